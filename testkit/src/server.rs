//! The HTTP/1.1 server both doubles run on: loopback only, port 0, every connection task ended on drop.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;

pub type Body = BoxBody<Bytes, std::io::Error>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never: Infallible| match never {}).boxed()
}

/// A body that sends `partial` and then breaks the connection, as a node dying mid-answer does.
pub fn broken_after(partial: Bytes) -> Body {
    let frames = vec![
        Ok(Frame::data(partial)),
        Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "double: reset mid-response")),
    ];
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

/// HTTPS for a server: a certificate for 127.0.0.1, localhost and ::1, made at start and signed by itself.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    /// The certificate in PEM: what a client must trust (`ES_CA_CERT`).
    pub ca_pem: String,
}

impl Tls {
    pub fn self_signed() -> Tls {
        Tls::self_signed_for(&["127.0.0.1", "localhost", "::1"])
    }

    /// A self-signed certificate for `names` only (another host's, to a client that reaches 127.0.0.1).
    pub fn self_signed_for(names: &[&str]) -> Tls {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let made = rcgen::generate_simple_self_signed(names).expect("a self-signed certificate");
        Tls::serving(made.cert, made.signing_key)
    }

    /// A self-signed certificate for this host's names that expired in 2021.
    pub fn expired() -> Tls {
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let mut params = rcgen::CertificateParams::new(names).expect("names");
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = params.self_signed(&key).expect("a self-signed certificate");
        Tls::serving(cert, key)
    }

    fn serving(cert: rcgen::Certificate, signing_key: rcgen::KeyPair) -> Tls {
        let made = (cert, signing_key);
        let key = PrivateKeyDer::Pkcs8(made.1.serialize_der().into());
        // The provider is named: the indexer's dependencies compile two, and rustls will not guess between them.
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![made.0.der().clone()], key)
            .expect("a usable certificate");
        Tls { acceptor: TlsAcceptor::from(Arc::new(config)), ca_pem: made.0.pem() }
    }
}

/// A port on 127.0.0.1 that never completes a connection, as an endpoint behind a security group that drops what
/// it does not allow: its accept queue is full and nothing accepts, so the kernel drops every further SYN.
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: TcpListener,
    _queued: Vec<std::net::TcpStream>,
}

impl Blackhole {
    pub async fn start() -> std::io::Result<Blackhole> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind("127.0.0.1:0".parse().expect("an address"))?;
        let listener = socket.listen(0)?;
        let addr = listener.local_addr()?;
        // Connections fill the queue until one is no longer answered (how many fit depends on the kernel).
        let mut queued = Vec::new();
        for _ in 0..16 {
            let attempt =
                tokio::time::timeout(std::time::Duration::from_millis(300), tokio::net::TcpStream::connect(addr));
            match attempt.await {
                Ok(Ok(stream)) => queued.push(stream.into_std()?),
                Ok(Err(error)) => return Err(error),
                Err(_) => return Ok(Blackhole { addr, _listener: listener, _queued: queued }),
            }
        }
        Err(std::io::Error::other("the accept queue did not fill: this kernel answers every connection"))
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// A running server; dropping it stops the listener and every open connection.
pub struct Server {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub tls: Option<Tls>,
    task: JoinHandle<()>,
}

impl Server {
    /// `http://127.0.0.1:PORT`, or `https://…` when it serves TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `handler` on 127.0.0.1 at a free port, over TLS when `tls` is given.
pub async fn serve<H, F>(handler: H, tls: Option<Tls>) -> std::io::Result<Server>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let acceptor = tls.as_ref().map(|tls| tls.acceptor.clone());
    let task = tokio::spawn(async move {
        let mut open = JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let handler = handler.clone();
            let acceptor = acceptor.clone();
            open.spawn(async move {
                match acceptor {
                    None => serve_connection(stream, handler).await,
                    // A client that does not trust the certificate gives up during the handshake.
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            serve_connection(stream, handler).await;
                        }
                    }
                }
            });
            while open.try_join_next().is_some() {}
        }
    });
    Ok(Server { addr, connections, tls, task })
}

async fn serve_connection<IO, H, F>(io: IO, handler: H)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let service = service_fn(move |request| {
        let handler = handler.clone();
        async move { Ok::<_, Infallible>(handler(request).await) }
    });
    // A client that hangs up, or a deliberately broken body, ends the connection; nothing to report.
    let _ = http1::Builder::new().serve_connection(TokioIo::new(io), service).await;
}

/// A server answering from state it shares with the test that started it.
pub struct Shared<S> {
    state: Arc<std::sync::Mutex<S>>,
    pub server: Server,
}

impl<S: Send + 'static> Shared<S> {
    /// Serves `answer(state, request)` on 127.0.0.1 at a free port, over TLS when `tls` is given.
    pub async fn start<F>(
        state: S,
        answer: fn(Arc<std::sync::Mutex<S>>, Request<Incoming>) -> F,
        tls: Option<Tls>,
    ) -> Shared<S>
    where
        F: Future<Output = Response<Body>> + Send + 'static,
    {
        let state = Arc::new(std::sync::Mutex::new(state));
        let shared = state.clone();
        let server = serve(move |request| answer(shared.clone(), request), tls).await.expect("bind 127.0.0.1:0");
        Shared { state, server }
    }

    /// `http://127.0.0.1:PORT`, or `https://…`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, S> {
        self.state.lock().expect("double state")
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.server.connections.load(Ordering::SeqCst)
    }
}

/// Reads a request's whole body.
pub async fn read_body(request: Request<Incoming>) -> (hyper::http::request::Parts, Bytes) {
    let (parts, body) = request.into_parts();
    let bytes = body.collect().await.map(|collected| collected.to_bytes()).unwrap_or_default();
    (parts, bytes)
}

/// A URL's path or query value with its `%XX` escapes decoded (an escape that is not two hex digits stays as it is).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1..i + 3).and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()),
        ) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
