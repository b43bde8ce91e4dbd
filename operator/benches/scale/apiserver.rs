//! A Kubernetes API server on loopback with just enough behaviour for the
//! controller: objects kept in memory by resource path; list (with equality
//! label selectors), get, create, server-side apply (the status subresource
//! too), JSON patch (the finalizer), merge patch and delete; and watches that
//! send every change after the resourceVersion they ask for. A Deployment
//! reports every replica available as soon as it is applied, as a cluster's
//! controllers soon would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Where an object lives: the API prefix and resource (`/apis/apps/v1`,
/// `deployments`), its namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    collection: String,
    namespace: String,
    name: String,
}

/// A change, as a watch sends it.
#[derive(Clone)]
struct Change {
    key: Key,
    version: u64,
    event: Value,
}

struct Store {
    objects: BTreeMap<Key, Value>,
    changes: tokio::sync::broadcast::Sender<Change>,
    /// Every change so far, for a watch that starts from a resourceVersion.
    history: Vec<Change>,
    version: u64,
    /// Requests by `METHOD resource[/subresource]`, for the report.
    requests: BTreeMap<String, u64>,
}

pub struct ApiServer {
    pub address: SocketAddr,
    store: Arc<Mutex<Store>>,
}

/// A request's path taken apart.
struct Target {
    collection: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn target(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => (format!("/api/{version}"), rest),
        ["apis", group, version, rest @ ..] => (format!("/apis/{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (Some((*namespace).to_owned()), rest),
        _ => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (resource, None, None),
        [resource, name] => (resource, Some(*name), None),
        [resource, name, sub] => (resource, Some(*name), Some(*sub)),
        _ => return None,
    };
    Some(Target {
        collection: format!("{prefix}/{resource}"),
        namespace,
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    })
}

fn status(code: StatusCode, reason: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                      "code": code.as_u16(), "message": format!("{reason} (scale bench API server)")});
    (code, axum::Json(body)).into_response()
}

fn query(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn matches(object: &Value, selector: Option<&str>) -> bool {
    selector.is_none_or(|selector| {
        selector
            .split(',')
            .filter(|s| !s.is_empty())
            .all(|term| match term.split_once('=') {
                Some((key, value)) => object["metadata"]["labels"][key].as_str() == Some(value),
                None => !object["metadata"]["labels"][term].is_null(),
            })
    })
}

/// RFC 7386.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// RFC 6902, the operations a finalizer patch uses (`test`, `add`,
/// `remove`, `replace`); a failed `test` is a conflict, as the API server
/// answers it.
fn json_patch(object: &mut Value, ops: &[Value]) -> Result<(), StatusCode> {
    for op in ops {
        let path = op["path"].as_str().unwrap_or_default();
        let (parent, last) = path.rsplit_once('/').ok_or(StatusCode::UNPROCESSABLE_ENTITY)?;
        let at = |object: &mut Value| object.pointer_mut(parent).map(|_| ());
        match op["op"].as_str() {
            Some("test") => {
                let found = object.pointer(path).cloned().unwrap_or(Value::Null);
                if found != op["value"] {
                    return Err(StatusCode::CONFLICT);
                }
            }
            Some("add" | "replace") => {
                at(object).ok_or(StatusCode::UNPROCESSABLE_ENTITY)?;
                let value = op["value"].clone();
                match object.pointer_mut(parent) {
                    Some(Value::Array(items)) if last == "-" => items.push(value),
                    Some(Value::Array(items)) => {
                        let index: usize = last.parse().map_err(|_| StatusCode::UNPROCESSABLE_ENTITY)?;
                        items.insert(index.min(items.len()), value);
                    }
                    Some(Value::Object(fields)) => {
                        fields.insert(last.to_owned(), value);
                    }
                    _ => return Err(StatusCode::UNPROCESSABLE_ENTITY),
                }
            }
            Some("remove") => match object.pointer_mut(parent) {
                Some(Value::Array(items)) => {
                    let index: usize = last.parse().map_err(|_| StatusCode::UNPROCESSABLE_ENTITY)?;
                    if index < items.len() {
                        items.remove(index);
                    }
                }
                Some(Value::Object(fields)) => {
                    fields.remove(last);
                }
                _ => return Err(StatusCode::UNPROCESSABLE_ENTITY),
            },
            _ => return Err(StatusCode::UNPROCESSABLE_ENTITY),
        }
    }
    Ok(())
}

impl Default for Store {
    fn default() -> Self {
        Self {
            objects: BTreeMap::new(),
            changes: tokio::sync::broadcast::channel(4096).0,
            history: Vec::new(),
            version: 0,
            requests: BTreeMap::new(),
        }
    }
}

impl Store {
    fn next_version(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    /// Stores `object` at `key` with the metadata the API server keeps. A
    /// write that changes nothing is no change: same resourceVersion, no
    /// watch event, as the API server answers a repeated apply.
    fn put(&mut self, key: Key, mut object: Value) -> Value {
        let previous = self.objects.get(&key);
        let generation = match previous {
            Some(old) if old["spec"] == object["spec"] => old["metadata"]["generation"].as_i64().unwrap_or(1),
            Some(old) => old["metadata"]["generation"].as_i64().unwrap_or(1) + 1,
            None => 1,
        };
        let uid = previous
            .and_then(|old| old["metadata"]["uid"].as_str())
            .map_or_else(
                || format!("uid-{}-{}", key.namespace, self.version + 1),
                str::to_owned,
            );
        let metadata = &mut object["metadata"];
        metadata["namespace"] = json!(key.namespace);
        metadata["name"] = json!(key.name);
        metadata["uid"] = json!(uid);
        metadata["generation"] = json!(generation);
        metadata["creationTimestamp"] = json!("2026-12-04T00:00:00Z");
        metadata["resourceVersion"] =
            previous.map_or(Value::Null, |old| old["metadata"]["resourceVersion"].clone());
        if key.collection == "/apis/apps/v1/deployments" {
            let replicas = object["spec"]["replicas"].as_i64().unwrap_or(1);
            object["status"] = json!({"observedGeneration": generation, "replicas": replicas,
                "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas});
        }
        if let Some(old) = previous
            && *old == object
        {
            return object;
        }
        let kind = if previous.is_some() { "MODIFIED" } else { "ADDED" };
        object["metadata"]["resourceVersion"] = json!(self.next_version());
        let change = Change {
            key: key.clone(),
            version: self.version,
            event: json!({"type": kind, "object": object}),
        };
        self.history.push(change.clone());
        // Nobody watching is no error.
        let _ = self.changes.send(change);
        self.objects.insert(key, object.clone());
        object
    }
}

async fn answer(
    State(store): State<Arc<Mutex<Store>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path() == "/version" {
        return axum::Json(
            json!({"major": "1", "minor": "34", "gitVersion": "v1.34.0", "gitCommit": "",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24",
            "compiler": "gc", "platform": "linux/amd64"}),
        )
        .into_response();
    }
    let Some(target) = target(uri.path()) else {
        return status(StatusCode::NOT_FOUND, "NotFound");
    };
    let watch = matches!(query(&uri, "watch").as_deref(), Some("true" | "1"));
    {
        let mut store = store.lock().unwrap();
        let resource = target
            .collection
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let what = match (&target.subresource, watch) {
            (Some(sub), _) => format!("{method} {resource}/{sub}"),
            (None, true) => format!("WATCH {resource}"),
            (None, false) if target.name.is_none() && method == Method::GET => format!("LIST {resource}"),
            (None, false) => format!("{method} {resource}"),
        };
        *store.requests.entry(what).or_default() += 1;
    }
    if watch {
        let seconds = query(&uri, "timeoutSeconds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(290);
        // As the API server does, a watch from a resourceVersion first sends
        // what changed after it: the changes between a list (or the end of
        // the last watch) and this watch are not lost. Without this the
        // finalizer the first reconciles added before the watch began never
        // woke 28 of 100 pipelines again.
        let since: u64 = query(&uri, "resourceVersion")
            .and_then(|v| v.parse().ok())
            .filter(|version| *version > 0)
            .unwrap_or(u64::MAX);
        let (missed, changes) = {
            let store = store.lock().unwrap();
            let missed: Vec<Change> = store
                .history
                .iter()
                .filter(|change| change.version > since)
                .cloned()
                .collect();
            (missed, store.changes.subscribe())
        };
        let stream = watch_stream(missed, changes, target, Duration::from_secs(seconds));
        return Response::builder()
            .header("content-type", "application/json")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError"));
    }
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(value) => value,
            Err(_) => return status(StatusCode::BAD_REQUEST, "BadRequest"),
        }
    };
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut store = store.lock().unwrap();
    let namespace = target.namespace.clone().unwrap_or_default();
    let generated = body["metadata"]["generateName"]
        .as_str()
        .map(|prefix| format!("{prefix}{}", store.version + 1));
    let named = target
        .name
        .clone()
        .or_else(|| body["metadata"]["name"].as_str().map(str::to_owned));
    let Some(name) = named.or(generated) else {
        if method != Method::GET {
            return status(StatusCode::BAD_REQUEST, "BadRequest");
        }
        let selector = query(&uri, "labelSelector");
        let items: Vec<Value> = store
            .objects
            .iter()
            .filter(|(key, _)| key.collection == target.collection)
            .filter(|(key, _)| target.namespace.as_ref().is_none_or(|ns| *ns == key.namespace))
            .map(|(_, object)| object.clone())
            .filter(|object| matches(object, selector.as_deref()))
            .collect();
        let version = store.version.to_string();
        return axum::Json(json!({"kind": "List", "apiVersion": "v1",
                                 "metadata": {"resourceVersion": version}, "items": items}))
        .into_response();
    };
    let key = Key {
        collection: target.collection.clone(),
        namespace,
        name,
    };
    let existing = store.objects.get(&key).cloned();
    match (method, existing) {
        (Method::GET, Some(object)) => axum::Json(object).into_response(),
        (Method::GET, None) => status(StatusCode::NOT_FOUND, "NotFound"),
        (Method::POST, Some(_)) => status(StatusCode::CONFLICT, "AlreadyExists"),
        (Method::POST, None) => (StatusCode::CREATED, axum::Json(store.put(key, body))).into_response(),
        (Method::DELETE, Some(_)) => {
            store.objects.remove(&key);
            axum::Json(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})).into_response()
        }
        (Method::DELETE, None) => status(StatusCode::NOT_FOUND, "NotFound"),
        (Method::PATCH, existing) => {
            let updated = if content_type.contains("apply-patch") {
                match (existing, target.subresource.as_deref()) {
                    (Some(mut object), Some("status")) => {
                        object["status"] = body["status"].clone();
                        object
                    }
                    (_, Some(_)) => return status(StatusCode::NOT_FOUND, "NotFound"),
                    (Some(mut object), None) => {
                        merge(&mut object, &body);
                        object
                    }
                    (None, None) => body,
                }
            } else {
                let Some(mut object) = existing else {
                    return status(StatusCode::NOT_FOUND, "NotFound");
                };
                if content_type.contains("json-patch") {
                    let ops = body.as_array().cloned().unwrap_or_default();
                    if let Err(code) = json_patch(&mut object, &ops) {
                        return status(code, "Invalid");
                    }
                } else {
                    merge(&mut object, &body);
                }
                object
            };
            axum::Json(store.put(key, updated)).into_response()
        }
        (Method::PUT, _) => axum::Json(store.put(key, body)).into_response(),
        _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
    }
}

/// The changes under `target` as watch events, one JSON line each: `missed`
/// first, then each as it comes, until `open` has passed.
fn watch_stream(
    missed: Vec<Change>,
    changes: tokio::sync::broadcast::Receiver<Change>,
    target: Target,
    open: Duration,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let deadline = tokio::time::Instant::now() + open;
    let missed = missed.into_iter();
    futures::stream::unfold(
        (missed, changes, target),
        move |(mut missed, mut changes, target)| async move {
            loop {
                let change = match missed.next() {
                    Some(change) => change,
                    // A watch that fell behind ends (the API server answers
                    // 410 Gone), and the client watches again from the last
                    // version it saw.
                    None => tokio::time::timeout_at(deadline, changes.recv())
                        .await
                        .ok()?
                        .ok()?,
                };
                let wanted = change.key.collection == target.collection
                    && target
                        .namespace
                        .as_ref()
                        .is_none_or(|ns| *ns == change.key.namespace);
                if wanted {
                    let mut line = change.event.to_string().into_bytes();
                    line.push(b'\n');
                    return Some((Ok(Bytes::from(line)), (missed, changes, target)));
                }
            }
        },
    )
}

impl ApiServer {
    pub async fn start() -> Self {
        let store = Arc::new(Mutex::new(Store::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let app = Router::new().fallback(answer).with_state(Arc::clone(&store));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, store }
    }

    /// Stores `object` (with `metadata.namespace` and `metadata.name`) under
    /// `collection`, e.g. `/apis/imagepipeline.io/v1alpha1/imagepipelines`.
    pub fn seed(&self, collection: &str, object: Value) {
        let key = Key {
            collection: collection.to_owned(),
            namespace: object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            name: object["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        };
        self.store.lock().unwrap().put(key, object);
    }

    /// Requests so far by `METHOD resource`, then forgets them.
    pub fn take_requests(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.store.lock().unwrap().requests)
    }

    /// A kubeconfig that points a client here, written to `path`.
    pub fn write_kubeconfig(&self, path: &std::path::Path) {
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: bench\n  cluster: {{ server: \"http://{}\" }}\n\
             users:\n- name: bench\n  user: {{}}\ncontexts:\n- name: bench\n  context: {{ cluster: bench, user: bench }}\n\
             current-context: bench\n",
            self.address
        );
        std::fs::write(path, config).expect("write the kubeconfig");
    }
}
