//! Which lists are associative. structured-merge-diff merges a list-map (`x-kubernetes-list-type:
//! map`) per key and a set per value, and replaces every other list whole. Custom resources
//! take this from their CRD's schema; built-ins (stored here without schemas) from a short
//! table of the lists kube's Go types declare as maps or sets.

use serde_json::Value;

/// How a list merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced whole, owned as one field.
    Atomic,
    /// Items identified by these key fields.
    Map(Vec<String>),
    /// Scalar items identified by their value.
    Set,
}

/// Where list types come from: a custom resource's schema (for the request's version), or
/// none for a built-in type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape<'a> {
    schema: Option<&'a Value>,
}

impl<'a> Shape<'a> {
    /// The shape of objects validated by `schema` (`None` for built-ins).
    pub fn new(schema: Option<&'a Value>) -> Self {
        Self { schema }
    }

    /// The schema, for a custom resource.
    pub fn schema(&self) -> Option<&'a Value> {
        self.schema
    }

    /// The schema node at `path` (fieldsV1 tokens), if the schema declares it.
    fn node(&self, path: &[String]) -> Option<&'a Value> {
        path.iter()
            .try_fold(self.schema?, |node, token| match token.strip_prefix("f:") {
                Some(name) => (node["properties"].get(name))
                    .or_else(|| node.get("additionalProperties").filter(|a| a.is_object())),
                None => node.get("items"),
            })
    }

    /// The type of the list at `path`.
    pub fn list_type(&self, path: &[String]) -> ListType {
        let names: Vec<&str> = path.iter().filter_map(|t| t.strip_prefix("f:")).collect();
        if let Some(known) = metadata_list(&names) {
            return known;
        }
        if self.schema.is_none() {
            return builtin_list(&names).unwrap_or(ListType::Atomic);
        }
        let Some(node) = self.node(path) else {
            return ListType::Atomic;
        };
        match node["x-kubernetes-list-type"].as_str() {
            Some("map") => ListType::Map(
                (node["x-kubernetes-list-map-keys"]
                    .as_array()
                    .into_iter()
                    .flatten())
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect(),
            ),
            Some("set") => ListType::Set,
            _ => ListType::Atomic,
        }
    }
}

fn keyed(key: &str) -> Option<ListType> {
    Some(ListType::Map(vec![key.to_string()]))
}

/// `ObjectMeta`'s lists, the same for every type.
fn metadata_list(names: &[&str]) -> Option<ListType> {
    match names {
        ["metadata", "finalizers"] => Some(ListType::Set),
        ["metadata", "ownerReferences"] => keyed("uid"),
        _ => None,
    }
}

/// The list-maps of the built-in types this server stores that kube declares with
/// `+listType=map` (`status.conditions` by type; pod templates' containers, volumes, env and
/// volumeMounts by name or mount path).
fn builtin_list(names: &[&str]) -> Option<ListType> {
    const CONTAINERS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];
    match names {
        ["status", "conditions"] => keyed("type"),
        [.., "spec", "volumes"] => keyed("name"),
        [.., "spec", list] if CONTAINERS.contains(list) => keyed("name"),
        [.., containers, "env"] if CONTAINERS.contains(containers) => keyed("name"),
        [.., containers, "volumeMounts"] if CONTAINERS.contains(containers) => keyed("mountPath"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| format!("f:{n}")).collect()
    }

    #[test]
    fn list_types_come_from_the_schema_or_the_builtin_table() {
        let schema = json!({"properties": {"spec": {"properties": {
            "targets": {"type": "array", "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"]},
            "tags": {"type": "array", "x-kubernetes-list-type": "set"},
            "plain": {"type": "array"}}}}});
        let crd = Shape::new(Some(&schema));
        assert_eq!(
            crd.list_type(&path(&["spec", "targets"])),
            ListType::Map(vec!["name".into()])
        );
        assert_eq!(crd.list_type(&path(&["spec", "tags"])), ListType::Set);
        assert_eq!(crd.list_type(&path(&["spec", "plain"])), ListType::Atomic);
        assert_eq!(
            crd.list_type(&path(&["metadata", "finalizers"])),
            ListType::Set
        );
        let builtin = Shape::new(None);
        let env = path(&["spec", "template", "spec", "containers", "env"]);
        assert_eq!(builtin.list_type(&env), ListType::Map(vec!["name".into()]));
        assert_eq!(
            builtin.list_type(&path(&["status", "conditions"])),
            ListType::Map(vec!["type".into()])
        );
        assert_eq!(builtin.list_type(&path(&["data", "x"])), ListType::Atomic);
    }
}
