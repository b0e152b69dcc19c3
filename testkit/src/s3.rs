//! An Amazon S3 double for `PutObject`: path-style `PUT /bucket/key` as the SDK sends it to a custom endpoint,
//! keeping every object, with scripted refusals.
//!
//! Errors follow S3's REST error responses (`<Error><Code>…</Code><Message>…</Message></Error>` with the status the
//! S3 API reference gives each code: `AccessDenied` 403, `NoSuchBucket` 404, `SlowDown` 503).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response};

use crate::server::{self, Body, Shared};

#[derive(Debug, Default)]
struct State {
    /// `bucket/key` → body.
    objects: BTreeMap<String, Vec<u8>>,
    /// While set, every request is answered with this status and S3 error code.
    refusing: Option<(u16, String)>,
    requests: usize,
}

/// The running double. Dropping it stops the server.
pub struct S3Double {
    shared: Shared<State>,
}

impl S3Double {
    /// Starts a double in which every bucket exists and every `PutObject` succeeds.
    pub async fn start() -> S3Double {
        S3Double { shared: Shared::start(State::default(), answer, None).await }
    }

    /// `http://127.0.0.1:PORT`, for the SDK's endpoint URL (path-style).
    pub fn url(&self) -> String {
        self.shared.url()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Answer every request with `status` and the S3 error `code` (`None`: take objects again).
    pub fn set_refusing(&self, refusal: Option<(u16, &str)>) {
        self.state().refusing = refusal.map(|(status, code)| (status, code.to_owned()));
    }

    /// Every object written, as `(bucket/key, body)`, in key order.
    pub fn objects(&self) -> Vec<(String, Vec<u8>)> {
        self.state().objects.iter().map(|(key, body)| (key.clone(), body.clone())).collect()
    }

    /// Requests received, answered or refused.
    pub fn requests(&self) -> usize {
        self.state().requests
    }
}

fn error(status: u16, code: &str, message: &str) -> Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>double</RequestId></Error>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .header("x-amz-request-id", "double")
        .body(server::full(body))
        .expect("response")
}

async fn answer(state: Arc<Mutex<State>>, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().trim_start_matches('/').to_owned();
    let (parts, body) = server::read_body(request).await;
    let mut state = state.lock().expect("state");
    state.requests += 1;
    if let Some((status, code)) = &state.refusing {
        return error(*status, code, "refused by the double");
    }
    if method != hyper::Method::PUT || !path.contains('/') {
        return error(405, "MethodNotAllowed", "the double answers PutObject (PUT /bucket/key) only");
    }
    let chunked = parts.headers.get("content-encoding").is_some_and(|v| v.as_bytes().starts_with(b"aws-chunked"));
    let body = match chunked {
        true => match aws_chunked(&body) {
            Some(decoded) => decoded,
            None => return error(400, "IncompleteBody", "the aws-chunked body cannot be read"),
        },
        false => body.to_vec(),
    };
    let key = server::percent_decode(&path);
    state.objects.insert(key, body);
    Response::builder()
        .status(200)
        .header("etag", "\"double\"")
        .header("x-amz-request-id", "double")
        .body(server::full(Bytes::new()))
        .expect("response")
}

/// The data of an `aws-chunked` body (`<hex size>[;extensions]\r\n<data>\r\n`… until a chunk of size 0, then
/// trailers), as the SDK sends a body with a trailing checksum.
fn aws_chunked(body: &[u8]) -> Option<Vec<u8>> {
    let mut data = Vec::with_capacity(body.len());
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|pair| pair == b"\r\n")?;
        let header = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(header.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(data);
        }
        data.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aws_chunked_body_is_its_chunks_data() {
        let body = b"5;chunk-signature=abc\r\nhello\r\n3\r\n wo\r\n0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n";
        assert_eq!(aws_chunked(body).unwrap(), b"hello wo");
        assert_eq!(aws_chunked(b"5\r\nhel"), None, "cut short");
        assert_eq!(server::percent_decode("b/rejected-documents/2026/a%3Ab"), "b/rejected-documents/2026/a:b");
    }
}
