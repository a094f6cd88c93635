//! The HTTP front: authentication, injected faults, routing and response encoding.

use crate::audit::AuditRecord;
use crate::delete::{self, DeleteOpts};
use crate::discovery;
use crate::error::ApiError;
use crate::faults::FaultAction;
use crate::list_watch::{self, ListQuery};
use crate::objects::{self, FieldValidation, WriteOpts};
use crate::patch::{self, PatchKind};
use crate::rbac::{Attributes, UserInfo};
use crate::routes::{self, ObjectPath, Route};
use crate::state::{Shared, Target};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use serde_json::Value;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

/// Response body type.
pub type Body = BoxBody<Bytes, Infallible>;

fn json_response(code: u16, value: &Value) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())).boxed());
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(err: &ApiError) -> Response<Body> {
    json_response(err.code, &err.to_status())
}

/// Everything a handler needs from the request.
struct Req {
    /// Who asks (after impersonation).
    user: UserInfo,
    method: Method,
    query: HashMap<String, String>,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Req {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn wants_table(&self) -> bool {
        self.header(header::ACCEPT).contains("as=Table")
    }

    fn write_opts(&self, shared: &Shared) -> WriteOpts {
        let agent = self
            .header(header::USER_AGENT)
            .split('/')
            .next()
            .unwrap_or_default();
        let manager = self.query.get("fieldManager").cloned().unwrap_or_else(|| {
            if agent.is_empty() {
                "unknown".into()
            } else {
                agent.to_string()
            }
        });
        WriteOpts {
            manager,
            force: self.query.get("force").is_some_and(|f| f == "true"),
            validate: shared.validation(),
            ratcheting: shared.ratcheting(),
            field_validation: FieldValidation::parse(
                self.query.get("fieldValidation").map(String::as_str),
            ),
            dry_run: self.query.get("dryRun").is_some_and(|d| d == "All"),
            warnings: Default::default(),
        }
    }

    /// kube's validation of the write options (`ValidatePatchOptions` and its create and
    /// update siblings): 422 on `PatchOptions.meta.k8s.io ""` (or Create/UpdateOptions).
    fn check_options(&self, patch: Option<PatchKind>) -> Result<(), ApiError> {
        let kind = match (&self.method, patch) {
            (&Method::POST, _) => "CreateOptions",
            (_, Some(_)) => "PatchOptions",
            _ => "UpdateOptions",
        };
        let manager = self.query.get("fieldManager").map_or("", String::as_str);
        let errs = objects::option_errors(
            patch.map(|p| p == PatchKind::Apply),
            manager,
            self.query.contains_key("force"),
            self.query.get("fieldValidation").map(String::as_str),
        );
        match errs.is_empty() {
            true => Ok(()),
            false => Err(ApiError::invalid("meta.k8s.io", kind, "", &errs)),
        }
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        if self
            .header(header::CONTENT_TYPE)
            .starts_with("application/vnd.kubernetes.protobuf")
        {
            return crate::proto::to_json(&self.body)
                .map_err(|e| ApiError::unsupported_media(&e.to_string()));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| ApiError::bad_request(format!("invalid request body: {e}")))
    }
}

/// Serves one request.
pub async fn serve(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let mut record = AuditRecord::new(
        req.method(),
        req.uri()
            .path_and_query()
            .map_or(path.as_str(), |pq| pq.as_str()),
        req.headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    );
    let resp = answer(&shared, path, req, &mut record).await;
    record.code = resp.status().as_u16();
    shared.audit().push(record);
    Ok(resp)
}

/// Answers one request (after faults, authentication and authorization).
async fn answer(
    shared: &Arc<Shared>,
    path: String,
    req: Request<Incoming>,
    record: &mut AuditRecord,
) -> Response<Body> {
    let path_and_query =
        (req.uri().path_and_query()).map_or(path.clone(), |pq| pq.as_str().to_string());
    let (fault, latency) = {
        let mut faults = shared.faults();
        (faults.take(&path_and_query), faults.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Some(FaultAction::Hang) => std::future::pending::<()>().await,
        Some(FaultAction::Fail(code)) => {
            let mut resp = error_response(&ApiError::injected(code));
            if matches!(code, 429 | 503) {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            return resp;
        }
        None => {}
    }
    let user = match identify(shared, req.headers()) {
        Ok(user) => user,
        Err(e) => return error_response(&e),
    };
    record.user = user.name.clone();
    if let Err(e) = authorize(shared, &user, req.method(), &path_and_query) {
        return error_response(&e);
    }
    let query = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error_response(&ApiError::bad_request(e.to_string())),
    };
    let r = Req {
        user,
        method: parts.method,
        query,
        headers: parts.headers,
        body,
    };
    route(shared, &path, &r).unwrap_or_else(|e| error_response(&e))
}

/// The user a request acts as (after impersonation), or 401/403 as kube answers.
fn identify(shared: &Shared, headers: &http::HeaderMap) -> Result<UserInfo, ApiError> {
    let store = shared.store();
    let user = shared.auth.authenticate(headers, &store)?;
    crate::authn::impersonate(&shared.auth, &store, user, headers)
}

/// With RBAC: 403 unless the stored policy allows `user` what the request asks.
fn authorize(shared: &Shared, user: &UserInfo, method: &Method, uri: &str) -> Result<(), ApiError> {
    if !shared.auth.rbac {
        return Ok(());
    }
    let attrs = Attributes::of_request(method, uri);
    let decision = crate::rbac::authorize(&*shared.store(), user, &attrs);
    match decision.allowed {
        true => Ok(()),
        false => Err(ApiError::forbidden(user, &attrs, &decision.reason)),
    }
}

fn route(shared: &Arc<Shared>, path: &str, r: &Req) -> Result<Response<Body>, ApiError> {
    let route = routes::parse(path).ok_or_else(ApiError::no_route)?;
    if !matches!(route, Route::Object(_)) && r.method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let store = shared.store();
    let reg = &store.registry;
    let doc = match route {
        Route::Object(p) => {
            drop(store);
            return object_route(shared, &p, r);
        }
        Route::Version => discovery::version(),
        Route::Health => return Ok(Response::new(Full::new(Bytes::from_static(b"ok")).boxed())),
        Route::CoreVersions => discovery::core_versions(r.header(header::HOST)),
        Route::Groups => reg.group_list(),
        Route::Group(g) => discovery::group(reg, &g).ok_or_else(ApiError::no_route)?,
        Route::Resources { group, version } => reg
            .resource_list(&group, &version)
            .ok_or_else(ApiError::no_route)?,
        Route::OpenApiV2 => return Err(ApiError::no_route()),
        Route::OpenApiV3 => discovery::openapi_root(reg),
        Route::OpenApiV3Gv { group, version } => {
            discovery::openapi_gv(reg, &group, &version).ok_or_else(ApiError::no_route)?
        }
    };
    Ok(json_response(200, &doc))
}

fn object_route(shared: &Arc<Shared>, p: &ObjectPath, r: &Req) -> Result<Response<Body>, ApiError> {
    if crate::review::is_review(&p.group) {
        if r.method != Method::POST {
            return Err(ApiError::method_not_allowed());
        }
        let review = crate::review::create(shared, p, &r.user, r.json_body()?)?;
        return Ok(json_response(201, &review));
    }
    let t = Target::resolve(&shared.store(), p)?;
    let is_watch = r
        .query
        .get("watch")
        .is_some_and(|w| w == "1" || w == "true");
    match (&r.method, t.name.is_some()) {
        (&Method::GET, false) if is_watch => Ok(watch_response(shared, t, r)?),
        (&Method::GET, false) => {
            let list = list_watch::list(shared, &t, &ListQuery::parse(&t, &r.query)?)?;
            Ok(json_response(200, &maybe_table(&t, r, list)))
        }
        (&Method::GET, true) => get_one(shared, &t, r),
        (&Method::POST, false) => {
            r.check_options(None)?;
            let opts = r.write_opts(shared);
            let obj = objects::create(&mut shared.store(), &t, r.json_body()?, &opts)?;
            Ok(written(201, &t, obj, &opts))
        }
        (&Method::PUT, true) => {
            r.check_options(None)?;
            let opts = r.write_opts(shared);
            let obj = objects::update(&mut shared.store(), &t, r.json_body()?, &opts)?;
            Ok(written(200, &t, obj, &opts))
        }
        (&Method::PATCH, true) => {
            let kind = PatchKind::from_content_type(r.header(header::CONTENT_TYPE))?;
            r.check_options(Some(kind))?;
            let opts = r.write_opts(shared);
            let obj = patch::patch(&mut shared.store(), &t, kind, &r.body, &opts)?;
            Ok(written(200, &t, obj, &opts))
        }
        (&Method::DELETE, true) => {
            let mut opts = DeleteOpts::parse(
                &r.body,
                r.query.get("propagationPolicy").map(String::as_str),
            );
            opts.dry_run = r.query.get("dryRun").is_some_and(|d| d == "All");
            let obj = delete::delete(&mut shared.store(), &t, &opts)?;
            Ok(json_response(200, &list_watch::present(&t, obj)))
        }
        (&Method::DELETE, false) => {
            let (items, _) = list_watch::matching(shared, &t, &ListQuery::parse(&t, &r.query)?);
            let list = delete::delete_collection(&mut shared.store(), &t, items);
            Ok(json_response(200, &list))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn get_one(shared: &Shared, t: &Target, r: &Req) -> Result<Response<Body>, ApiError> {
    let name = t.name()?;
    let obj = shared
        .store()
        .get(&t.rt.storage_id(), &t.namespace, name)
        .cloned()
        .ok_or_else(|| t.not_found(name))?;
    Ok(json_response(
        200,
        &maybe_table(t, r, list_watch::present(t, obj)),
    ))
}

/// A write's answer, with a `Warning` header per warning (e.g. pruned unknown fields).
fn written(code: u16, t: &Target, obj: Value, opts: &WriteOpts) -> Response<Body> {
    let mut resp = json_response(code, &list_watch::present(t, obj));
    for w in opts.warnings.borrow().iter() {
        let text = format!("299 - {}", serde_json::Value::String(w.clone()));
        if let Ok(v) = header::HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

fn maybe_table(t: &Target, r: &Req, v: Value) -> Value {
    if r.wants_table() {
        crate::table::to_table(t, &v)
    } else {
        v
    }
}

fn watch_response(shared: &Arc<Shared>, t: Target, r: &Req) -> Result<Response<Body>, ApiError> {
    let q = ListQuery::parse(&t, &r.query)?;
    let convert: list_watch::Convert = if r.wants_table() {
        let tt = t.clone();
        Box::new(move |obj| crate::table::to_table(&tt, &obj))
    } else {
        Box::new(|obj| obj)
    };
    let rx = list_watch::watch(shared.clone(), t, q, convert);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
