//! The real kubectl against the server's CEL cost limits: a CRD whose rule kube-apiserver
//! estimates over its budget is refused with kube's errors, and accepted once the list and
//! strings the rule walks are bounded.

mod common;

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              tags:
                type: array
                items: {type: string}
                x-kubernetes-validations:
                - rule: self.all(t, t.matches('^[a-z]+$'))
";

const RULE: &str = "spec.validation.openAPIV3Schema.properties[spec].properties[tags]\
    .x-kubernetes-validations[0].rule";
const HINT: &str = "(try simplifying the rule, or adding maxItems, maxProperties, and maxLength \
    where arrays, maps, and strings are declared)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_kubes_cost_errors_for_an_unbounded_rule_and_applies_it_bounded() {
    let server = common::server().await;
    let kubectl = common::kubectl(&server);
    for mode in [
        vec!["apply", "-f", "-"],
        vec!["apply", "--server-side", "-f", "-"],
    ] {
        let stderr = kubectl.fails(&mode, CRD).await;
        for want in [
            r#"The CustomResourceDefinition "widgets.example.com" is invalid"#,
            &format!(
                "{RULE}: Forbidden: estimated rule cost exceeds budget by factor of more than 100x {HINT}"
            ),
            &format!(
                "{RULE}: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema"
            ),
            &format!(
                "spec.validation.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of more than 100x {HINT}"
            ),
        ] {
            assert!(stderr.contains(want), "{mode:?}: no {want:?} in\n{stderr}");
        }
    }
    let bounded = CRD.replace(
        "items: {type: string}",
        "maxItems: 16\n                items: {type: string, maxLength: 63}",
    );
    kubectl.ok_stdin(&["apply", "-f", "-"], &bounded).await;
    let crd = "crd/widgets.example.com";
    kubectl
        .ok(&["wait", "--for=condition=Established", crd, "--timeout=10s"])
        .await;
}
