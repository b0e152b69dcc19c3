//! A Lambda Runtime API double: hands queued events to a function binary (`GET …/invocation/next`) and keeps what it
//! answers (`…/response`, `…/error`, `…/init/error`), so the real `bootstrap` can be run as Lambda runs it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
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
}

/// The running double. Dropping it stops the server.
pub struct LambdaApiDouble {
    state: Arc<Mutex<State>>,
    event_ready: Arc<Notify>,
    answered: Arc<Notify>,
    next_id: AtomicU64,
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
        LambdaApiDouble { state, event_ready, answered, next_id: AtomicU64::new(1), server }
    }

    /// `127.0.0.1:PORT`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.server.addr.to_string()
    }

    /// Queues an invocation with `timeout` until its deadline; returns its request id.
    pub fn invoke(&self, event: &str, timeout: Duration) -> String {
        let request_id = format!("00000000-0000-4000-8000-{:012}", self.next_id.fetch_add(1, Ordering::SeqCst));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64;
        self.state.lock().expect("state").queue.push_back((
            request_id.clone(),
            event.to_owned(),
            now + timeout.as_millis() as u64,
        ));
        self.event_ready.notify_one();
        request_id
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

async fn answer(
    state: Arc<Mutex<State>>,
    event_ready: Arc<Notify>,
    answered: Arc<Notify>,
    request: Request<Incoming>,
) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
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
