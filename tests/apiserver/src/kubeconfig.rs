//! The kubeconfig files the server writes for its clients (kubectl, helm, kube-rs).

use std::path::Path;

use base64::Engine as _;

use crate::server::ServerError;

/// What a kubeconfig says: where the server is, whom to trust, who the client is.
pub struct Kubeconfig<'a> {
    /// `http://` or `https://` URL.
    pub url: &'a str,
    /// CA certificate (PEM) for an HTTPS server.
    pub ca_pem: Option<&'a str>,
    /// Bearer token; `None`: a user without credentials.
    pub token: Option<&'a str>,
    /// The context's namespace.
    pub namespace: &'a str,
}

impl Kubeconfig<'_> {
    /// Writes it to `path`.
    pub fn write(&self, path: &Path) -> Result<(), ServerError> {
        let user = match self.token {
            Some(t) => format!("    token: {t}\n"),
            None => "    username: canary\n".to_string(),
        };
        let ca = (self.ca_pem.map(|pem| {
            let data = base64::engine::general_purpose::STANDARD.encode(pem);
            format!("    certificate-authority-data: {data}\n")
        }))
        .unwrap_or_default();
        let (url, namespace) = (self.url, self.namespace);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: canary-test\n  cluster:\n    server: {url}\n{ca}\
             contexts:\n- name: canary-test\n  context:\n    cluster: canary-test\n    user: canary-test\n    namespace: {namespace}\n\
             current-context: canary-test\nusers:\n- name: canary-test\n  user:\n{user}"
        );
        std::fs::write(path, text).map_err(|source| ServerError::Kubeconfig {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Writes a kubeconfig pointing at `url` (plain HTTP), authenticating with `token` if any.
pub fn write_kubeconfig(path: &Path, url: &str, token: Option<&str>) -> Result<(), ServerError> {
    let kubeconfig = Kubeconfig {
        url,
        ca_pem: None,
        token,
        namespace: "default",
    };
    kubeconfig.write(path)
}
