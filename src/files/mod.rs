//! HealthChecks from YAML files, shared by `canary check` and standalone mode: multi-document
//! files and directories, every error naming the file, the document and the field; references
//! resolved from mounted-volume-like folders (`DIR/<name>/<key>`) that a name cannot escape.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use kube::{Resource, api::ObjectMeta};

use crate::{
    api::{CheckKey, HealthCheck, HealthCheckSpec, ReferenceKind, ValueRef},
    probe::{ReferenceError, ReferenceSource},
};

mod explain;

/// Why files could not be turned into HealthChecks.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{path}, document {document}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Document {
        path: PathBuf,
        document: usize,
        /// The line of the field the message names, when it can be found.
        line: Option<usize>,
        message: String,
    },
    #[error("{0}: no .yaml or .yml files found")]
    Empty(PathBuf),
}

/// A HealthCheck read from a file, with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub resource: HealthCheck,
    pub path: PathBuf,
    /// 1-based document index within the file.
    pub document: usize,
}

impl Loaded {
    /// Namespace (`default` when the file gives none) and name.
    pub fn key(&self) -> CheckKey {
        CheckKey::of(&self.resource)
    }

    /// The error prefix naming this document.
    pub fn origin(&self) -> String {
        format!("{}, document {}", self.path.display(), self.document)
    }

    /// [`Loaded::origin`] with the line of `field` (`spec.tcp.port`), when it can be found.
    pub fn origin_of(&self, field: &str) -> String {
        match line_of(&self.path, self.document.saturating_sub(1), field) {
            Some(line) => format!("{}, line {line}", self.origin()),
            None => self.origin(),
        }
    }
}

/// Expands files and directories (sorted, `*.yaml`/`*.yml`) into the files to read.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut files = Vec::new();
    for path in paths {
        let read_err = |source| LoadError::Read {
            path: path.clone(),
            source,
        };
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(read_err)?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            if found.is_empty() {
                return Err(LoadError::Empty(path.clone()));
            }
            found.sort();
            files.extend(found);
        } else {
            std::fs::metadata(path).map_err(read_err)?;
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Reads every HealthCheck in `paths`; duplicates (same namespace/name) are an error.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Loaded>, LoadError> {
    let mut loaded = Vec::new();
    for file in expand(paths)? {
        loaded.extend(load_file(&file)?);
    }
    let mut seen = BTreeSet::new();
    for item in &loaded {
        if !seen.insert(item.key()) {
            return Err(LoadError::Document {
                path: item.path.clone(),
                document: item.document,
                line: None,
                message: format!("metadata.name: duplicate HealthCheck {}", item.key()),
            });
        }
    }
    Ok(loaded)
}

/// Most documents one file may hold (a fleet's worth; each is bounded by the YAML budget).
pub const MAX_DOCUMENTS: usize = 1_000_000;
/// Largest file read.
const MAX_FILE_BYTES: usize = 512 * 1024 * 1024;

/// Opens a YAML file for [`documents`].
pub fn open(path: &Path) -> Result<std::io::BufReader<std::fs::File>, LoadError> {
    let file = std::fs::File::open(path).map_err(|source| LoadError::Read {
        path: path.into(),
        source,
    })?;
    Ok(std::io::BufReader::new(file))
}

/// The documents of a YAML stream, streamed with the budget (nodes, depth, aliases) enforced
/// per document: a fleet file of 100,000 HealthChecks loads, an alias bomb in one document
/// does not.
pub fn documents<R: std::io::Read>(
    reader: &mut R,
) -> impl Iterator<Item = Result<serde_json::Value, serde_saphyr::Error>> + '_ {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_reader_input_bytes: Some(MAX_FILE_BYTES) },
    };
    serde_saphyr::read_with_options(reader, options)
}

fn load_file(path: &Path) -> Result<Vec<Loaded>, LoadError> {
    let mut reader = open(path)?;
    let documents = documents(&mut reader);
    let yaml_error = |e: serde_saphyr::Error| {
        let mut message = e.to_string();
        if message.contains("budget") {
            message.push_str(
                " (limits per document: 250000 nodes, depth 64, 50000 aliases; per file: 1000000 documents, 512 MiB)",
            );
        }
        LoadError::Yaml {
            path: path.into(),
            message,
        }
    };
    let mut loaded = Vec::new();
    for (index, document) in documents.enumerate() {
        if index >= MAX_DOCUMENTS {
            return Err(LoadError::Yaml {
                path: path.into(),
                message: format!("more than {MAX_DOCUMENTS} documents, the limit per file"),
            });
        }
        let document = document.map_err(yaml_error)?;
        if document.is_null() {
            continue;
        }
        let error = |invalid: Invalid| LoadError::Document {
            path: path.into(),
            document: index + 1,
            line: (invalid.field.as_deref()).and_then(|field| line_of(path, index, field)),
            message: invalid.to_string(),
        };
        let resource = parse_document(document).map_err(error)?;
        loaded.push(Loaded {
            resource,
            path: path.into(),
            document: index + 1,
        });
    }
    Ok(loaded)
}

/// Why a document is not a HealthCheck: the field (dotted path), when one is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", field.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct Invalid {
    pub field: Option<String>,
    pub message: String,
}

impl Invalid {
    fn at(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

/// The keys a HealthCheck document may have at its top.
const DOCUMENT_KEYS: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

/// Parses one document strictly: right apiVersion and kind, a name, no unknown fields.
pub fn parse_document(document: serde_json::Value) -> Result<HealthCheck, Invalid> {
    let field = |name: &str| {
        document
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let (want_version, want_kind) = (HealthCheck::api_version(&()), HealthCheck::kind(&()));
    if api_version != want_version || kind != want_kind {
        return Err(Invalid::at(
            "apiVersion",
            format!("apiVersion/kind {api_version:?}/{kind:?} is not {want_version} {want_kind}"),
        ));
    }
    let top = document.as_object().into_iter().flat_map(|map| map.keys());
    if let Some(unknown) = top
        .into_iter()
        .find(|key| !DOCUMENT_KEYS.contains(&key.as_str()))
    {
        let hint = explain::did_you_mean(unknown);
        return Err(Invalid::at(
            unknown.as_str(),
            format!("unknown field{hint}"),
        ));
    }
    let metadata: ObjectMeta =
        serde_json::from_value(document.get("metadata").cloned().unwrap_or_default())
            .map_err(|e| Invalid::at("metadata", e.to_string()))?;
    if metadata.name.as_deref().is_none_or(str::is_empty) {
        return Err(Invalid::at("metadata.name", "Required value"));
    }
    let spec_value =
        (document.get("spec").cloned()).ok_or(Invalid::at("spec", "Required value"))?;
    let mut unknown = Vec::new();
    let spec: HealthCheckSpec = serde_ignored::deserialize(&spec_value, |path| {
        unknown.push(format!("spec.{path}").replace(".?", ""))
    })
    .map_err(|_| strict_error(&spec_value))?;
    if let Some(field) = unknown.into_iter().next() {
        let hint = explain::did_you_mean(&field);
        return Err(Invalid::at(field, format!("unknown field{hint}")));
    }
    let mut resource = HealthCheck::new(metadata.name.as_deref().unwrap_or_default(), spec);
    resource.metadata = metadata;
    if resource.metadata.namespace.is_none() {
        resource.metadata.namespace = Some("default".into());
    }
    Ok(resource)
}

/// Names the field a type error is at, the type wanted in words
/// (`spec.tcp.port: expected a port number (1 to 65535), got the string "http"`).
fn strict_error(spec: &serde_json::Value) -> Invalid {
    match serde_path_to_error::deserialize::<_, HealthCheckSpec>(spec) {
        Ok(_) => Invalid::at("spec", "invalid"),
        Err(e) => {
            let path = format!("spec.{}", e.path());
            // A missing field is named by its parent's path; the message says which.
            let path = path.strip_suffix(".?").unwrap_or(&path).to_string();
            let message = explain::friendly(&path, &e.inner().to_string());
            Invalid::at(path, message)
        }
    }
}

/// The line of `field` in the `index`th (0-based) document of `path`: the file is read again,
/// only when a document is wrong.
fn line_of(path: &Path, index: usize, field: &str) -> Option<usize> {
    let file = std::fs::File::open(path).ok()?;
    let mut reader = std::io::BufReader::new(file);
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! { max_reader_input_bytes: Some(MAX_FILE_BYTES) },
    };
    let mut documents = serde_saphyr::read_with_options::<_, explain::Node>(&mut reader, options);
    documents.nth(index)?.ok()?.line_of(field)
}

/// Reads Secret and ConfigMap keys from `DIR/<name>/<key>`, like mounted volumes.
#[derive(Debug, Clone, Default)]
pub struct DirReferences {
    pub secrets_dir: Option<PathBuf>,
    pub config_maps_dir: Option<PathBuf>,
}

impl DirReferences {
    fn dir(&self, kind: ReferenceKind) -> (Option<&Path>, &'static str) {
        match kind {
            ReferenceKind::Secret => (self.secrets_dir.as_deref(), "--secrets-dir"),
            ReferenceKind::ConfigMap => (self.config_maps_dir.as_deref(), "--configmaps-dir"),
        }
    }
}

impl ReferenceSource for DirReferences {
    fn read(&self, value: &ValueRef) -> Result<Vec<u8>, ReferenceError> {
        let (kind, name, key) = (value.object.kind, &value.object.name, &value.key);
        let (dir, flag) = self.dir(kind);
        let dir = dir.ok_or_else(|| {
            ReferenceError::Unavailable(format!(
                "{} {name:?} is referenced: pass {flag} DIR holding DIR/{name}/{key}",
                kind.as_str()
            ))
        })?;
        // validate() already refused names and keys that are paths; resolving links as well
        // keeps a symlink planted in the folder from reading outside it.
        let root = dir
            .canonicalize()
            .map_err(|_| ReferenceError::missing(value, false))?;
        let object = (root.join(name).canonicalize())
            .ok()
            .filter(|object| object.starts_with(&root) && object.is_dir())
            .ok_or_else(|| ReferenceError::missing(value, false))?;
        let file =
            (object.join(key).canonicalize()).map_err(|_| ReferenceError::missing(value, true))?;
        if !file.starts_with(&root) {
            return Err(ReferenceError::Unavailable(format!(
                "{} {name:?} key {key:?} resolves outside {}",
                kind.as_str(),
                dir.display()
            )));
        }
        std::fs::read(file).map_err(|_| ReferenceError::missing(value, true))
    }
}
