//! Receiving an invocation from `lambda_runtime` as the bytes Lambda sent: a layer takes the body before the runtime
//! would deserialize it, so the event is read once, by `KinesisEventIn::from_body`, and never copied into records.
//!
//! The runtime deserializes the body into the handler's payload type; the layer hands it `null` (the payload type
//! is `()`) and gives the real body to the invocation's own future (a task-local scope), where the handler takes it.

use std::cell::Cell;
use std::collections::HashMap;
use std::task::{Context, Poll};

use bytes::Bytes;
use lambda_runtime::LambdaInvocation;
use lambda_runtime::tower::{Layer, Service};
use tokio::task::futures::TaskLocalFuture;

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

tokio::task_local! {
    /// The body of the invocation whose future is being polled: it travels with that future (`TakeBody` scopes it
    /// there), so concurrent invocations (`AWS_LAMBDA_MAX_CONCURRENCY`) each find their own.
    static BODY: Cell<Option<Bytes>>;
}

/// The body of the invocation being handled, once: it is the handler's from now on. `None` outside an invocation's
/// future (a handler called without `TakeBody`), or once taken. Call it from the handler's future, not from the
/// function that makes it.
pub fn take_body() -> Option<Vec<u8>> {
    let body = BODY.try_with(Cell::take).ok().flatten()?;
    // No copy when the runtime's buffer is the body's alone (as when it collected the response into one).
    Some(Vec::from(body))
}

/// The layer: `Runtime::new(handler).layer(TakeBody)`, with a handler of `LambdaEvent<()>` whose future calls
/// `take_body()`.
#[derive(Debug, Clone, Copy)]
pub struct TakeBody;

impl<S> Layer<S> for TakeBody {
    type Service = TakeBodyService<S>;

    fn layer(&self, inner: S) -> TakeBodyService<S> {
        TakeBodyService { inner }
    }
}

#[derive(Debug, Clone)]
pub struct TakeBodyService<S> {
    inner: S,
}

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for TakeBodyService<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<Cell<Option<Bytes>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> Self::Future {
        let body = std::mem::replace(&mut invocation.body, Bytes::from_static(b"null"));
        BODY.scope(Cell::new(Some(body)), self.inner.call(invocation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::tower::ServiceExt;
    use lambda_runtime::tower::service_fn;

    fn invocation(body: &'static [u8]) -> LambdaInvocation {
        let parts = http::Response::new(()).into_parts().0;
        LambdaInvocation { parts, body: Bytes::from_static(body), context: Default::default() }
    }

    #[tokio::test]
    async fn each_invocation_takes_its_own_body_once_even_when_they_run_at_once() {
        let (first_sent, first_waits) = tokio::sync::oneshot::channel::<()>();
        let waits = std::sync::Mutex::new(Some(first_waits));
        let handler = service_fn(|invocation: LambdaInvocation| {
            let wait = waits.lock().unwrap().take();
            async move {
                assert_eq!(&invocation.body[..], b"null", "the runtime gets no copy of the body");
                if let Some(wait) = wait {
                    wait.await.unwrap();
                }
                let body = take_body();
                Ok::<_, std::convert::Infallible>((body, take_body()))
            }
        });
        let mut service = TakeBody.layer(handler);
        let first = service.ready().await.unwrap().call(invocation(b"{\"Records\":[1]}"));
        let second = service.ready().await.unwrap().call(invocation(b"{\"Records\":[2]}"));
        let first = tokio::spawn(first);
        assert_eq!(second.await.unwrap(), (Some(b"{\"Records\":[2]}".to_vec()), None), "its own, once");
        first_sent.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), (Some(b"{\"Records\":[1]}".to_vec()), None));
        assert_eq!(take_body(), None, "outside an invocation there is none");
    }
}
