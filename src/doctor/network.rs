//! The doctor's way to the cluster, one layer at a time: the name resolved, a TCP connection made, a TLS handshake
//! with the certificate's names and issuer kept, so that a refusal says which certificate was refused and why.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use url::{Host, Url};

use super::{Budget, Check};
use crate::config::Config;

/// Checks DNS, TCP and TLS in turn into `checks`; true when the cluster's port was reached (and, over HTTPS, the
/// handshake done), so that asking it something can tell more.
pub(super) async fn reach(config: &Config, budget: &Budget, checks: &mut Vec<Check>) -> bool {
    let Ok(url) = Url::parse(&config.cluster.url) else {
        checks.push(Check::fail("dns", "ES_URL is not a URL", "set ES_URL to https://host[:port]"));
        return false;
    };
    let https = url.scheme() == "https";
    let port = url.port_or_known_default().unwrap_or(if https { 443 } else { 80 });
    let (host, addresses) = match url.host() {
        Some(Host::Domain(name)) => {
            let resolved = match budget.next() {
                Err(why) => Err(why),
                Ok(timeout) => match tokio::time::timeout(timeout, tokio::net::lookup_host((name, port))).await {
                    Ok(Ok(found)) => Ok(found.collect::<Vec<SocketAddr>>()),
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
                },
            };
            match resolved {
                Ok(found) if !found.is_empty() => {
                    let shown: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
                    checks.push(Check::ok("dns", format!("{name} resolves to {}", shown.join(", "))));
                    (name.to_owned(), found)
                }
                resolved => {
                    let why = resolved.err().unwrap_or_else(|| "no address".to_owned());
                    checks.push(Check::fail(
                        "dns",
                        format!("{name} does not resolve: {why}"),
                        "check the host in ES_URL; a VPC domain's endpoint (vpc-…) resolves only inside its VPC: \
                         deploy the function there (the stack's VpcSubnetIds and VpcSecurityGroupIds), in a VPC with DNS \
                         resolution and DNS hostnames on",
                    ));
                    skip_after(checks, "dns", https);
                    return false;
                }
            }
        }
        Some(Host::Ipv4(ip)) => address_only(checks, IpAddr::V4(ip), port),
        Some(Host::Ipv6(ip)) => address_only(checks, IpAddr::V6(ip), port),
        None => {
            checks.push(Check::fail("dns", "ES_URL has no host", "set ES_URL to https://host[:port]"));
            return false;
        }
    };
    let Some(stream) = connect(&addresses, budget, checks).await else {
        skip_after(checks, "tcp", https);
        return false;
    };
    if !https {
        checks.push(Check::warn(
            "tls",
            "ES_URL is plain http: what is indexed, and the credentials, cross the network unencrypted",
            "use https:// when the cluster serves it (every AWS domain does)",
        ));
        return true;
    }
    handshake(config, &host, stream, budget, checks).await
}

/// The DNS check of an `ES_URL` that names an address: nothing to resolve.
fn address_only(checks: &mut Vec<Check>, ip: IpAddr, port: u16) -> (String, Vec<SocketAddr>) {
    checks.push(Check::ok("dns", format!("ES_URL names the address {ip}: nothing to resolve")));
    (ip.to_string(), vec![SocketAddr::new(ip, port)])
}

/// The checks after a failed one, skipped.
fn skip_after(checks: &mut Vec<Check>, failed: &str, https: bool) {
    let layers: &[&str] = match (failed, https) {
        ("dns", true) => &["tcp", "tls"],
        ("dns", false) => &["tcp"],
        ("tcp", true) => &["tls"],
        _ => &[],
    };
    for layer in layers {
        checks.push(Check::skipped(layer, format!("not tried: {failed} failed")));
    }
}

/// A TCP connection to the first address that takes one; the first failure is reported when none does.
async fn connect(addresses: &[SocketAddr], budget: &Budget, checks: &mut Vec<Check>) -> Option<tokio::net::TcpStream> {
    let mut failures = Vec::new();
    for address in addresses {
        let timeout = match budget.next() {
            Ok(timeout) => timeout,
            Err(why) => {
                failures.push((why, false));
                break;
            }
        };
        let started = Instant::now();
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                let took = started.elapsed().as_millis();
                checks.push(Check::ok("tcp", format!("connected to {address} in {took} ms")));
                return Some(stream);
            }
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => failures
                .push((format!("{address} refused the connection: nothing listens on port {}", address.port()), false)),
            Ok(Err(error)) => failures.push((format!("{address}: {error}"), true)),
            Err(_) => failures.push((
                format!(
                    "{address} did not answer within {} ms: the connection is dropped on the way",
                    timeout.as_millis()
                ),
                true,
            )),
        }
    }
    let dropped = failures.iter().any(|(_, dropped)| *dropped);
    let found = failures.into_iter().map(|(why, _)| why).collect::<Vec<_>>().join("; ");
    let port = addresses.first().map_or(443, SocketAddr::port);
    let fix = match dropped {
        true => format!(
            "let the function reach the cluster's port: the cluster's security group must allow inbound TCP {port} \
             from the function's security group (VpcSecurityGroupIds), and the function's subnets (VpcSubnetIds) \
             must route to it (network ACLs too); a function outside the domain's VPC cannot reach a VPC endpoint"
        ),
        false => "check the port in ES_URL (443 for AWS domains, 9200 for a self-managed cluster's default) and that \
                  the cluster is running"
            .to_owned(),
    };
    checks.push(Check::fail("tcp", found, fix));
    None
}

/// What a certificate says of itself, for messages.
struct CertificateFacts {
    names: Vec<String>,
    subject: String,
    issuer: String,
    valid: String,
}

impl CertificateFacts {
    fn read(der: &[u8]) -> Option<CertificateFacts> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        let names = certificate
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|extension| {
                extension
                    .value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
                        x509_parser::extensions::GeneralName::IPAddress(bytes) => ip_of(bytes).map(|ip| ip.to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let validity = certificate.validity();
        Some(CertificateFacts {
            names,
            subject: certificate.subject().to_string(),
            issuer: certificate.issuer().to_string(),
            valid: format!("{} to {}", validity.not_before, validity.not_after),
        })
    }

    fn describe(&self) -> String {
        let names = match self.names.is_empty() {
            true => format!("no names besides its subject {}", self.subject),
            false => self.names.join(", "),
        };
        format!("the certificate is for [{names}], issued by {}, valid {}", self.issuer, self.valid)
    }
}

fn ip_of(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// The TLS check: a handshake as the function's client makes it (the public webpki roots, and `ES_CA_CERT`'s), the
/// server's certificate kept to be shown whatever the outcome.
async fn handshake(
    config: &Config,
    host: &str,
    stream: tokio::net::TcpStream,
    budget: &Budget,
    checks: &mut Vec<Check>,
) -> bool {
    let timeout = match budget.next() {
        Ok(timeout) => timeout,
        Err(why) => {
            checks.push(Check::skipped("tls", why));
            return false;
        }
    };
    let verifier = match Recording::new(config) {
        Ok(verifier) => Arc::new(verifier),
        Err(why) => {
            checks.push(Check::fail("tls", why, "give ES_CA_CERT a readable PEM bundle of CA certificates"));
            return false;
        }
    };
    let client = client_config(verifier.clone());
    let Ok(name) = ServerName::try_from(host.to_owned()) else {
        checks.push(Check::fail("tls", format!("{host} is not a name TLS can check"), "set ES_URL's host"));
        return false;
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let done = tokio::time::timeout(timeout, connector.connect(name, stream)).await;
    let facts = verifier.seen().as_deref().and_then(CertificateFacts::read);
    let shown = facts.as_ref().map_or_else(|| "no certificate was received".to_owned(), CertificateFacts::describe);
    match done {
        Ok(Ok(tls)) => {
            let version = tls.get_ref().1.protocol_version().map_or("TLS".to_owned(), |v| format!("{v:?}"));
            checks.push(handshake_done(config, host, &version, &shown));
            true
        }
        Ok(Err(error)) => {
            let fix = refused_certificate_fix(&error, facts.as_ref());
            checks.push(Check::fail("tls", format!("the handshake with {host} failed ({error}): {shown}"), fix));
            false
        }
        Err(_) => {
            checks.push(Check::fail(
                "tls",
                format!(
                    "{host} accepted the connection but did not finish a TLS handshake within {} ms",
                    timeout.as_millis()
                ),
                "check that the port serves TLS, and that nothing on the way (a proxy, a load balancer) holds it",
            ));
            false
        }
    }
}

/// The function's TLS client: rustls with ring's default versions, verifying through `verifier`.
fn client_config(verifier: Arc<Recording>) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring offers the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth()
}

/// The TLS check of a finished handshake: ok, or a warning when the certificate was not verified.
fn handshake_done(config: &Config, host: &str, version: &str, shown: &str) -> Check {
    match config.cluster.tls_verify {
        true => Check::ok("tls", format!("{version}: {shown}, trusted for {host}")),
        false => Check::warn(
            "tls",
            format!("{version}: {shown}; NOT verified (ES_TLS_VERIFY=false)"),
            "trust its issuer instead: make deploy SET=\"EsTlsVerify=true EsCaCert=/opt/ca.pem\" (a PEM bundle \
             from a layer)",
        ),
    }
}

/// The fix for a failed handshake, by why the certificate (described by `facts`, when one came) was refused.
fn refused_certificate_fix(error: &std::io::Error, facts: Option<&CertificateFacts>) -> String {
    let refused = error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match (refused, facts) {
        (
            Some(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )),
            Some(facts),
        ) => format!(
            "ES_URL must name the cluster by a name its certificate holds ({}); a custom endpoint needs its \
             own certificate on the domain",
            facts.names.join(", ")
        ),
        (Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)), Some(facts)) => format!(
            "trust the issuer {}: EsCaCert (ES_CA_CERT) names a PEM bundle holding its CA (in Lambda, from a \
             layer: /opt/…)",
            facts.issuer
        ),
        (
            Some(rustls::Error::InvalidCertificate(
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. },
            )),
            _,
        ) => "renew the cluster's certificate (or correct its clock)".to_owned(),
        _ => "check that ES_URL's port serves HTTPS (http:// if it serves plain HTTP), and the cluster's TLS \
              settings"
            .to_owned(),
    }
}

/// rustls's own verification, keeping the certificate the server presented.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    verify: bool,
    seen: Mutex<Option<CertificateDer<'static>>>,
}

impl Recording {
    fn new(config: &Config) -> Result<Recording, String> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(path) = &config.cluster.ca_cert {
            let read =
                CertificateDer::pem_file_iter(path).map_err(|e| format!("ES_CA_CERT {}: {e}", path.display()))?;
            for certificate in read {
                let certificate = certificate.map_err(|e| format!("ES_CA_CERT {}: {e}", path.display()))?;
                roots.add(certificate).map_err(|e| format!("ES_CA_CERT {}: {e}", path.display()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("no roots to verify with: {e}"))?;
        Ok(Recording { inner, verify: config.cluster.tls_verify, seen: Mutex::new(None) })
    }

    fn seen(&self) -> Option<Vec<u8>> {
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).as_ref().map(|der| der.to_vec())
    }
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(end_entity.clone().into_owned());
        match self.verify {
            true => self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            false => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match self.verify {
            true => self.inner.verify_tls12_signature(message, certificate, signature),
            false => Ok(HandshakeSignatureValid::assertion()),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match self.verify {
            true => self.inner.verify_tls13_signature(message, certificate, signature),
            false => Ok(HandshakeSignatureValid::assertion()),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
