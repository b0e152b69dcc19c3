//! Receiving an invocation from `lambda_runtime` as the bytes Lambda sent: a layer takes the body before the runtime
//! would deserialize it, so the event is read once, by `KinesisEventIn::from_body`, and never copied into records.
//!
//! The runtime deserializes the body into the handler's payload type; the layer hands it `null` (the payload type
//! is `()`) and keeps the real body for the handler under the invocation's request id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use lambda_runtime::LambdaInvocation;
use lambda_runtime::tower::{Layer, Service};

/// The request an operator's event holds when the body is one (`{"KEY": {…}}`, KEY first; a Kinesis event starts
/// with `Records`), or why it cannot be read; `what` names the event in that reason.
pub fn operator_request<T: serde::de::DeserializeOwned>(
    body: &[u8],
    key: &str,
    what: &str,
) -> Option<Result<T, String>> {
    let start = body.iter().position(|b| !b.is_ascii_whitespace())?;
    if !body[start..].starts_with(format!("{{\"{key}\"").as_bytes()) {
        return None;
    }
    let mut event = match serde_json::from_slice::<HashMap<String, T>>(body) {
        Ok(event) => event,
        Err(e) => return Some(Err(format!("not a {what} event: {e}"))),
    };
    Some(event.remove(key).ok_or_else(|| format!("not a {what} event: {key} is missing")))
}

/// Bodies taken from invocations and not yet handled, by request id (one at a time without managed concurrency).
#[derive(Debug, Clone, Default)]
pub struct Bodies(Arc<Mutex<HashMap<String, bytes::Bytes>>>);

impl Bodies {
    /// The body of the invocation `request_id`, once: it is the handler's from now on.
    pub fn take(&self, request_id: &str) -> Option<Vec<u8>> {
        let body = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(request_id)?;
        // No copy when the runtime's buffer is the body's alone (as when it collected the response into one).
        Some(Vec::from(body))
    }

    /// Keeps the body of a new invocation. The runtime runs one invocation at a time (`Runtime::run`), so a body
    /// still here belongs to one whose handler never ran, and is dropped rather than kept for ever.
    fn keep(&self, request_id: String, body: bytes::Bytes) {
        let mut bodies = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        bodies.clear();
        bodies.insert(request_id, body);
    }
}

/// The layer: `Runtime::new(handler).layer(TakeBody(bodies.clone()))`, with a handler of `LambdaEvent<()>` that
/// calls `bodies.take(&event.context.request_id)`.
#[derive(Debug, Clone)]
pub struct TakeBody(pub Bodies);

impl<S> Layer<S> for TakeBody {
    type Service = TakeBodyService<S>;

    fn layer(&self, inner: S) -> TakeBodyService<S> {
        TakeBodyService { inner, bodies: self.0.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct TakeBodyService<S> {
    inner: S,
    bodies: Bodies,
}

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for TakeBodyService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> S::Future {
        let body = std::mem::replace(&mut invocation.body, bytes::Bytes::from_static(b"null"));
        self.bodies.keep(invocation.context.request_id.clone(), body);
        self.inner.call(invocation)
    }
}
