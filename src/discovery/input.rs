//! Source objects from YAML files or folders (e.g. `helm template` output) for
//! `canary discover`: Ingress, IngressClass, Service, Namespace, Gateway, HTTPRoute, GRPCRoute
//! and CheckDiscovery documents, also inside a `List`; every other kind is ignored.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Inputs;
use crate::{
    api::CheckDiscovery,
    files::{self, LoadError},
};

/// Why the input files could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Files(#[from] LoadError),
    #[error("{path}: not valid YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{path}, document {document}: {kind} {name}: {message}")]
    Document {
        path: PathBuf,
        document: usize,
        kind: String,
        name: String,
        message: String,
    },
}

/// What the files hold.
#[derive(Debug, Clone, Default)]
pub struct Read {
    pub discoveries: Vec<CheckDiscovery>,
    pub inputs: Inputs,
}

/// Reads every document of `paths` (files, or folders of `*.yaml`/`*.yml`).
pub fn read(paths: &[PathBuf]) -> Result<Read, InputError> {
    let mut read = Read::default();
    for file in files::expand(paths)? {
        read_file(&file, &mut read)?;
    }
    Ok(read)
}

/// Streams the documents of one file, with `canary check`'s limits: the YAML budget per
/// document (a `helm template` of thousands of objects loads, an alias bomb does not).
fn read_file(path: &Path, read: &mut Read) -> Result<(), InputError> {
    let mut reader = files::open(path)?;
    let documents = files::documents(&mut reader);
    let yaml = |message: String| InputError::Yaml {
        path: path.into(),
        message,
    };
    for (index, document) in documents.enumerate() {
        if index >= files::MAX_DOCUMENTS {
            let limit = files::MAX_DOCUMENTS;
            return Err(yaml(format!(
                "more than {limit} documents, the limit per file"
            )));
        }
        let document = document.map_err(|e| yaml(e.to_string()))?;
        add(document, read).map_err(|(kind, name, message)| InputError::Document {
            path: path.into(),
            document: index + 1,
            kind,
            name,
            message,
        })?;
    }
    Ok(())
}

/// (kind, name, message) of a document that is of a known kind but malformed.
type Bad = (String, String, String);

fn add(mut document: Value, read: &mut Read) -> Result<(), Bad> {
    let text = |key: &str| {
        document
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let group = api_version
        .rsplit_once('/')
        .map_or("", |(group, _)| group)
        .to_string();
    if kind == "List" {
        let items = document
            .get_mut("items")
            .map(Value::take)
            .unwrap_or_default();
        for item in items.as_array().into_iter().flatten() {
            add(item.clone(), read)?;
        }
        return Ok(());
    }
    let namespaced = kind != "Namespace" && kind != "IngressClass";
    if namespaced
        && document.pointer("/metadata/namespace").is_none()
        && let Some(meta) = document.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert("namespace".into(), "default".into());
    }
    let inputs = &mut read.inputs;
    match (group.as_str(), kind.as_str()) {
        ("networking.k8s.io", "Ingress") => inputs.ingresses.push(parse(&kind, document)?),
        ("networking.k8s.io", "IngressClass") => {
            inputs.ingress_classes.push(parse(&kind, document)?)
        }
        ("", "Service") => inputs.services.push(parse(&kind, document)?),
        ("", "Namespace") => inputs.namespaces.push(parse(&kind, document)?),
        ("gateway.networking.k8s.io", "Gateway") => inputs.gateways.push(parse(&kind, document)?),
        ("gateway.networking.k8s.io", "HTTPRoute") => {
            inputs.http_routes.push(parse(&kind, document)?)
        }
        ("gateway.networking.k8s.io", "GRPCRoute") => {
            inputs.grpc_routes.push(parse(&kind, document)?)
        }
        ("canary.dev", "CheckDiscovery") => read.discoveries.push(parse_strict(&kind, document)?),
        _ => {}
    }
    Ok(())
}

fn parse<T: DeserializeOwned>(kind: &str, document: Value) -> Result<T, Bad> {
    let name = document
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("(no name)")
        .to_string();
    serde_path_to_error::deserialize(document).map_err(|e| {
        (
            kind.to_string(),
            name,
            format!("{}: {}", e.path(), e.inner()),
        )
    })
}

/// Parses Canary's own kind strictly: a misspelt field (`optin`) is an error, not a default.
fn parse_strict<T: DeserializeOwned>(kind: &str, document: Value) -> Result<T, Bad> {
    let mut unknown = Vec::new();
    // apiVersion and kind were read already; the typed object carries them as constants.
    let parsed: Result<T, _> = serde_ignored::deserialize(&document, |path| {
        let path = path.to_string();
        if path != "apiVersion" && path != "kind" {
            unknown.push(path);
        }
    });
    match (parsed, unknown.first()) {
        (Ok(parsed), None) => Ok(parsed),
        (Ok(_), Some(field)) => {
            let name = document.pointer("/metadata/name").and_then(Value::as_str);
            let name = name.unwrap_or("(no name)").to_string();
            Err((kind.into(), name, format!("{field}: unknown field")))
        }
        (Err(_), _) => parse(kind, document),
    }
}
