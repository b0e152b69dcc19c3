//! A Lambda Runtime API double: hands queued events to a function binary (`GET …/invocation/next`) and keeps what it
//! answers (`…/response`, `…/error`, `…/init/error`), so the real `bootstrap` can be run as Lambda runs it. It also
//! answers Lambda's `Invoke` API (`POST /2015-03-31/functions/NAME/invocations`, synchronous), so that a client
//! reaches the function only as a deployed one is reached: through its invoke API; and `ListEventSourceMappings`
//! (`GET /2015-03-31/event-source-mappings/`), with the mappings a test sets.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use serde_json::Value;
use tokio::sync::Notify;

use crate::server::{self, Body, Server};

/// What the function posted back.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Response { request_id: String, body: Value },
    InvocationError { request_id: String, body: Value },
    InitError { body: Value },
}

#[derive(Default)]
struct State {
    queue: VecDeque<(String, String, u64)>,
    answers: Vec<Answer>,
    /// When the function first asked for an invocation: the end of its cold start.
    first_poll: Option<std::time::Instant>,
    next_id: u64,
    /// What `ListEventSourceMappings` lists (the API's `EventSourceMappingConfiguration` shapes).
    event_source_mappings: Vec<Value>,
}

impl State {
    /// Queues an invocation with `timeout` until its deadline; returns its request id.
    fn enqueue(&mut self, event: String, timeout: Duration) -> String {
        self.next_id += 1;
        let request_id = format!("00000000-0000-4000-8000-{:012}", self.next_id);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64;
        self.queue.push_back((request_id.clone(), event, now + timeout.as_millis() as u64));
        request_id
    }
}

/// The time an invocation through the `Invoke` API is given, as a function's timeout.
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The running double. Dropping it stops the server.
pub struct LambdaApiDouble {
    state: Arc<Mutex<State>>,
    event_ready: Arc<Notify>,
    answered: Arc<Notify>,
    server: Server,
}

impl LambdaApiDouble {
    pub async fn start() -> LambdaApiDouble {
        let state = Arc::new(Mutex::new(State::default()));
        let event_ready = Arc::new(Notify::new());
        let answered = Arc::new(Notify::new());
        let (s, e, a) = (state.clone(), event_ready.clone(), answered.clone());
        let server = server::serve(move |request| answer(s.clone(), e.clone(), a.clone(), request), None)
            .await
            .expect("bind 127.0.0.1:0");
        LambdaApiDouble { state, event_ready, answered, server }
    }

    /// `http://127.0.0.1:PORT`: the Lambda endpoint a client invokes the function at (`AWS_ENDPOINT_URL_LAMBDA`).
    pub fn invoke_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.server.addr.to_string()
    }

    /// Queues an invocation with `timeout` until its deadline; returns its request id.
    pub fn invoke(&self, event: &str, timeout: Duration) -> String {
        let request_id = self.state.lock().expect("state").enqueue(event.to_owned(), timeout);
        self.event_ready.notify_one();
        request_id
    }

    /// The mappings `ListEventSourceMappings` lists, whatever the function asked for, one a page.
    pub fn set_event_source_mappings(&self, mappings: Vec<Value>) {
        self.state.lock().expect("state").event_source_mappings = mappings;
    }

    /// When the function first asked for an invocation (`GET …/invocation/next`), if it has.
    pub fn first_poll(&self) -> Option<std::time::Instant> {
        self.state.lock().expect("state").first_poll
    }

    /// Waits until `count` answers have arrived, or `wait` passes; returns what arrived.
    pub async fn answers(&self, count: usize, wait: Duration) -> Vec<Answer> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.answered.notified();
            {
                let answers = &self.state.lock().expect("state").answers;
                if answers.len() >= count || tokio::time::Instant::now() >= until {
                    return answers.clone();
                }
            }
            let _ = tokio::time::timeout_at(until, notified).await;
        }
    }
}

/// Lambda's synchronous `Invoke`: the payload queued as an invocation, answered with what the function answers
/// (an error with `X-Amz-Function-Error: Unhandled`, as Lambda does).
async fn invoked(
    state: Arc<Mutex<State>>,
    event_ready: Arc<Notify>,
    answered: Arc<Notify>,
    request: Request<Incoming>,
) -> Response<Body> {
    let (_, payload) = server::read_body(request).await;
    let request_id =
        state.lock().expect("state").enqueue(String::from_utf8_lossy(&payload).into_owned(), INVOKE_TIMEOUT);
    event_ready.notify_one();
    let until = tokio::time::Instant::now() + INVOKE_TIMEOUT;
    loop {
        let notified = answered.notified();
        let found = state.lock().expect("state").answers.iter().find_map(|answer| match answer {
            Answer::Response { request_id: id, body } if *id == request_id => Some((false, body.clone())),
            Answer::InvocationError { request_id: id, body } if *id == request_id => Some((true, body.clone())),
            _ => None,
        });
        if let Some((failed, body)) = found {
            let mut response = Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("x-amzn-requestid", &request_id);
            if failed {
                response = response.header("x-amz-function-error", "Unhandled");
            }
            return response.body(server::full(body.to_string())).expect("response");
        }
        if tokio::time::timeout_at(until, notified).await.is_err() {
            let timed_out = r#"{"errorMessage":"Task timed out","errorType":"Sandbox.Timedout"}"#;
            return Response::builder()
                .status(200)
                .header("x-amz-function-error", "Unhandled")
                .body(server::full(timed_out))
                .expect("response");
        }
    }
}

async fn answer(
    state: Arc<Mutex<State>>,
    event_ready: Arc<Notify>,
    answered: Arc<Notify>,
    request: Request<Incoming>,
) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    if method == Method::POST && path.starts_with("/2015-03-31/functions/") && path.ends_with("/invocations") {
        return invoked(state, event_ready, answered, request).await;
    }
    if method == Method::GET && path.trim_end_matches('/') == "/2015-03-31/event-source-mappings" {
        // One mapping a page (the API may return fewer than asked), so that a client must follow `NextMarker`.
        let marker = request.uri().query().and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("Marker=")));
        let at: usize = marker.and_then(|m| m.parse().ok()).unwrap_or(0);
        let mappings = state.lock().expect("state").event_source_mappings.clone();
        let page: Vec<&Value> = mappings.iter().skip(at).take(1).collect();
        let mut body = serde_json::json!({ "EventSourceMappings": page });
        if at + 1 < mappings.len() {
            body["NextMarker"] = Value::String((at + 1).to_string());
        }
        return Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(server::full(body.to_string()))
            .expect("response");
    }
    let parts: Vec<String> = path.trim_start_matches("/2018-06-01/runtime/").split('/').map(str::to_owned).collect();
    if method == Method::GET && parts == ["invocation", "next"] {
        state.lock().expect("state").first_poll.get_or_insert_with(std::time::Instant::now);
        loop {
            let ready = event_ready.notified();
            if let Some((request_id, event, deadline)) = state.lock().expect("state").queue.pop_front() {
                return Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .header("lambda-runtime-aws-request-id", request_id)
                    .header("lambda-runtime-deadline-ms", deadline.to_string())
                    .header(
                        "lambda-runtime-invoked-function-arn",
                        "arn:aws:lambda:eu-west-1:123456789012:function:kinesis-es-indexer",
                    )
                    .header("lambda-runtime-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
                    .body(server::full(event))
                    .expect("response");
            }
            ready.await;
        }
    }
    let (_, body) = server::read_body(request).await;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let recorded = match parts.as_slice() {
        [invocation, id, kind] if invocation == "invocation" && kind == "response" => {
            Answer::Response { request_id: id.clone(), body }
        }
        [invocation, id, kind] if invocation == "invocation" && kind == "error" => {
            Answer::InvocationError { request_id: id.clone(), body }
        }
        [init, error] if init == "init" && error == "error" => Answer::InitError { body },
        _ => return Response::builder().status(404).body(server::full("unknown runtime API path")).expect("response"),
    };
    state.lock().expect("state").answers.push(recorded);
    answered.notify_waiters();
    Response::builder().status(202).body(server::full(r#"{"status":"OK"}"#)).expect("response")
}
