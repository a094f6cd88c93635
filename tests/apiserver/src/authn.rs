//! Authentication: who a request comes from. The admin token (kubectl, helm) is
//! `system:masters`; a ServiceAccount token is that ServiceAccount while it exists (kube's
//! `--service-account-lookup`); no token is `system:anonymous`. Impersonation headers
//! (`kubectl --as`) switch to another user when the authorizer allows `impersonate`.

use std::collections::HashMap;
use std::sync::Mutex;

use http::{HeaderMap, header};

use crate::error::ApiError;
use crate::rbac::{self, ANONYMOUS, AUTHENTICATED, Attributes, UNAUTHENTICATED, UserInfo};
use crate::store::Store;

/// Credentials the server knows.
#[derive(Debug)]
pub struct Auth {
    /// Whether requests are authorized with RBAC.
    pub rbac: bool,
    /// The admin's bearer token, if any (without RBAC: required from every client).
    pub admin_token: Option<String>,
    /// ServiceAccount tokens: token -> (namespace, name).
    tokens: Mutex<HashMap<String, (String, String)>>,
}

impl Auth {
    /// With RBAC, an admin token is always issued (generated unless given).
    pub fn new(rbac: bool, admin_token: Option<String>) -> Self {
        let admin_token =
            admin_token.or_else(|| rbac.then(|| format!("admin-{}", crate::meta::new_uid())));
        Self {
            rbac,
            admin_token,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The token of ServiceAccount `namespace/name` (the same one each time).
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        let account = (namespace.to_string(), name.to_string());
        if let Some((token, _)) = tokens.iter().find(|(_, a)| **a == account) {
            return token.clone();
        }
        let token = format!("sa-{namespace}-{name}-{}", crate::meta::new_uid());
        tokens.insert(token.clone(), account);
        token
    }

    /// The user of a request with `headers`, or 401.
    pub fn authenticate(&self, headers: &HeaderMap, store: &Store) -> Result<UserInfo, ApiError> {
        let bearer = (headers.get(header::AUTHORIZATION))
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = bearer else {
            return match (&self.admin_token, self.rbac) {
                (_, true) => Ok(UserInfo::anonymous()),
                (Some(_), false) => Err(ApiError::unauthorized()),
                (None, false) => Ok(UserInfo::admin()),
            };
        };
        if self.admin_token.as_deref() == Some(token) {
            return Ok(UserInfo::admin());
        }
        let account = {
            let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
            tokens.get(token).cloned()
        };
        match account {
            Some((ns, name)) if store.get("serviceaccounts", &ns, &name).is_some() => {
                Ok(UserInfo::service_account(&ns, &name))
            }
            _ => Err(ApiError::unauthorized()),
        }
    }
}

/// The user a request acts as: `user`, or the one its `Impersonate-User` (and
/// `Impersonate-Group`) headers name, if `user` may impersonate them.
pub fn impersonate(
    auth: &Auth,
    store: &Store,
    user: UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let values = |name: &str| -> Vec<String> {
        (headers.get_all(name).iter())
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    };
    let groups = values("impersonate-group");
    let Some(name) = values("impersonate-user").into_iter().next() else {
        if groups.is_empty() {
            return Ok(user);
        }
        return Err(ApiError::internal_error(
            "requested groups without impersonating a user",
        ));
    };
    let mut target = match rbac::service_account_of(&name) {
        Some((ns, sa)) if groups.is_empty() => UserInfo::service_account(ns, sa),
        _ => UserInfo {
            name: name.clone(),
            groups: groups.clone(),
        },
    };
    let adds_authenticated = name != ANONYMOUS
        && !(target.groups.iter()).any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED);
    if adds_authenticated {
        target.groups.push(AUTHENTICATED.to_string());
    }
    if auth.rbac {
        for attrs in acting_as(&name, &groups) {
            let decision = rbac::authorize(store, &user, &attrs);
            if !decision.allowed {
                return Err(ApiError::forbidden(&user, &attrs, &decision.reason));
            }
        }
    }
    Ok(target)
}

/// The `impersonate` requests kube authorizes for impersonating `name` with `groups`.
fn acting_as(name: &str, groups: &[String]) -> Vec<Attributes> {
    let impersonate = |resource: &str, namespace: &str, name: &str| Attributes {
        verb: "impersonate".into(),
        resource_request: true,
        resource: resource.into(),
        namespace: namespace.into(),
        name: name.into(),
        ..Attributes::default()
    };
    let mut out = vec![match rbac::service_account_of(name) {
        Some((ns, sa)) => impersonate("serviceaccounts", ns, sa),
        None => impersonate("users", "", name),
    }];
    out.extend(groups.iter().map(|g| impersonate("groups", "", g)));
    out
}
