//! A stand-in for the Redshift Data API, for what the emulator cannot do.
//! moto 5.2.5 never finishes a statement (each stays `STARTED`; a
//! `CancelStatement` makes it `ABORTED`), so a statement there never has a
//! result, nor an error; its `GetStatementResult` is three fixed rows, and its
//! moto-api has no way to script either. This answers the four calls `query`
//! makes, over plain HTTP on loopback, as Redshift would for the statements a
//! test scripts; the binary reaches it through the SDK's standard
//! `AWS_ENDPOINT_URL_REDSHIFT_DATA` while every other service stays the
//! emulator's.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// What Redshift does with one scripted statement.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A result set: the columns (name, Redshift type) and its pages of
    /// records, each record a list of Data API `Field`s as JSON
    /// (`{"longValue": 1}`, `{"isNull": true}`, …).
    Rows {
        columns: Vec<(&'static str, &'static str)>,
        pages: Vec<Vec<Vec<Value>>>,
    },
    /// No result set; the rows it changed (`-1`: Redshift does not say).
    Affected(i64),
    /// Fails with Redshift's error text.
    Failed(&'static str),
}

#[derive(Default)]
struct Scripted {
    answers: HashMap<String, Answer>,
    /// Every ExecuteStatement request, as sent.
    submitted: Vec<Value>,
    /// Per statement id: its answer and how often it was described.
    statements: HashMap<String, (Answer, u32)>,
}

type Shared = Arc<Mutex<Scripted>>;

pub struct DataApiStandIn {
    address: SocketAddr,
    state: Shared,
    /// Ends the server's thread when sent, or dropped.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl DataApiStandIn {
    /// Answers each SQL text of `script` (exactly as submitted) so; any
    /// other is refused with a ValidationException naming it. The server
    /// has a thread and runtime of its own: a test waits for the binary
    /// it runs with `Command::output`, which blocks the test's runtime.
    pub fn start(script: Vec<(&str, Answer)>) -> Self {
        let state: Shared = Arc::new(Mutex::new(Scripted {
            answers: script
                .into_iter()
                .map(|(sql, answer)| (sql.to_owned(), answer))
                .collect(),
            ..Scripted::default()
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().expect("its address");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = Router::new().route("/", post(call)).with_state(state.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("the stand-in's runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("the stand-in serves");
            });
        });
        Self {
            address,
            state,
            stop: Some(stop),
        }
    }

    /// For `AWS_ENDPOINT_URL_REDSHIFT_DATA`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The ExecuteStatement requests received so far.
    pub fn submitted(&self) -> Vec<Value> {
        self.state.lock().expect("state").submitted.clone()
    }
}

impl Drop for DataApiStandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The AWS JSON 1.1 protocol: the operation is named by `X-Amz-Target`.
async fn call(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut state = state.lock().expect("state");
    match target.strip_prefix("RedshiftData.").unwrap_or(target) {
        "ExecuteStatement" => {
            let sql = input["Sql"].as_str().unwrap_or_default().to_owned();
            let Some(answer) = state.answers.get(&sql).cloned() else {
                return error(
                    "ValidationException",
                    &format!("the stand-in has no answer for {sql:?}"),
                );
            };
            state.submitted.push(input.clone());
            let id = format!("00000000-0000-4000-8000-{:012}", state.submitted.len());
            state.statements.insert(id.clone(), (answer, 0));
            ok(json!({
                "Id": id,
                "ClusterIdentifier": input["ClusterIdentifier"],
                "Database": input["Database"],
                "DbUser": input["DbUser"],
                "CreatedAt": 1_764_633_600,
            }))
        }
        "DescribeStatement" => {
            let id = input["Id"].as_str().unwrap_or_default().to_owned();
            let Some((answer, described)) = state.statements.get_mut(&id) else {
                return error("ResourceNotFoundException", &format!("no statement {id}"));
            };
            *described += 1;
            // Running when first looked at, as a real statement is: `query`
            // must wait for it.
            if *described == 1 {
                return ok(json!({ "Id": id, "Status": "STARTED", "HasResultSet": false }));
            }
            ok(match answer {
                Answer::Rows { pages, .. } => {
                    let rows: usize = pages.iter().map(Vec::len).sum();
                    json!({ "Id": id, "Status": "FINISHED", "HasResultSet": true, "ResultRows": rows })
                }
                Answer::Affected(rows) => {
                    json!({ "Id": id, "Status": "FINISHED", "HasResultSet": false, "ResultRows": rows })
                }
                Answer::Failed(text) => {
                    json!({ "Id": id, "Status": "FAILED", "HasResultSet": false, "Error": text, "ResultRows": -1 })
                }
            })
        }
        "GetStatementResult" => {
            let id = input["Id"].as_str().unwrap_or_default();
            let Some((Answer::Rows { columns, pages }, _)) = state.statements.get(id) else {
                return error(
                    "ValidationException",
                    &format!("statement {id} has no result set"),
                );
            };
            let page: usize = input["NextToken"]
                .as_str()
                .and_then(|token| token.strip_prefix("page-"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let metadata: Vec<Value> = columns
                .iter()
                .map(|(name, type_name)| json!({ "name": name, "label": name, "typeName": type_name }))
                .collect();
            let mut out = json!({
                "ColumnMetadata": metadata,
                "Records": pages.get(page).cloned().unwrap_or_default(),
                "TotalNumRows": pages.iter().map(Vec::len).sum::<usize>(),
            });
            if page + 1 < pages.len() {
                out["NextToken"] = json!(format!("page-{}", page + 1));
            }
            ok(out)
        }
        "CancelStatement" => ok(json!({ "Status": true })),
        other => error(
            "UnknownOperationException",
            &format!("the stand-in does not answer {other}"),
        ),
    }
}

fn ok(body: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

fn error(code: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        json!({ "__type": code, "message": message }).to_string(),
    )
        .into_response()
}
