//! TLS against the double serving a self-signed certificate: trusted through `ES_CA_CERT`, refused without it, and
//! an explicit opt-out that says so at every cold start.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use kinesis_es_indexer::Outcome::*;
use testkit::{EsDouble, FirehoseDouble};

use crate::support::*;

/// A PEM file that is removed when dropped.
pub(crate) struct TempPem(pub(crate) PathBuf);

impl TempPem {
    pub(crate) fn new(pem: &str) -> TempPem {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("kinesis-es-indexer-ca-{}-{}.pem", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, pem).unwrap();
        TempPem(path)
    }
}

impl Drop for TempPem {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A harness whose Elasticsearch double serves HTTPS, configured with `overrides` (besides `ES_URL`).
async fn tls_harness(mut overrides: impl FnMut(&EsDouble) -> Vec<(String, String)>) -> Harness {
    let es = EsDouble::start_tls().await;
    let firehose = FirehoseDouble::start().await;
    let mut settings = vec![("ES_URL".to_owned(), es.url())];
    settings.extend(overrides(&es));
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let deps = deps(&es, Some(&firehose), &pairs);
    Harness { es, firehose, deps }
}

#[tokio::test]
async fn a_cluster_whose_ca_is_trusted_is_reached_over_tls() {
    let mut ca = None;
    let h = tls_harness(|es| {
        let pem = TempPem::new(&es.ca_pem().unwrap());
        let path = pem.0.to_string_lossy().into_owned();
        ca = Some(pem);
        vec![("ES_CA_CERT".into(), path)]
    })
    .await;
    assert!(h.es.url().starts_with("https://"));

    let report = h.deliver(&event(&plain_payloads(2))).await;
    let again = h.deliver(&event_from(2, &plain_payloads(2))).await;

    assert_eq!(outcomes(&report), vec![Indexed; 2]);
    assert_eq!(outcomes(&again), vec![Indexed; 2]);
    assert_eq!(h.es.connections(), 1, "one TLS handshake: the connection is kept between invocations");
    drop(ca);
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_and_explained() {
    let logs = Logs::capture();
    let h = tls_harness(|_| vec![]).await;

    let report = h.deliver(&event(&plain_payloads(2))).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis; 2]);
    assert_eq!(h.es.count(), 0);
    let line = &logs.matching("WARN", "Records go back to Kinesis")[0];
    assert_eq!(line["error_type"], "connection_error");
    assert!(line["reason"].as_str().unwrap().to_lowercase().contains("certificate"), "{line}");
}

#[tokio::test]
async fn switching_verification_off_works_and_is_said_loudly() {
    let logs = Logs::capture();
    let h = tls_harness(|_| vec![("ES_TLS_VERIFY".into(), "false".into())]).await;

    let report = h.deliver(&event(&plain_payloads(1))).await;

    assert_eq!(outcomes(&report), vec![Indexed]);
    assert_eq!(logs.matching("ERROR", "TLS certificate verification is OFF").len(), 1);
}

#[tokio::test]
async fn a_missing_ca_file_stops_the_cold_start_and_names_the_variable() {
    let config = kinesis_es_indexer::Config::from_lookup(|name| match name {
        "ES_URL" => Some("https://127.0.0.1:9".into()),
        "ES_CA_CERT" => Some("/nonexistent/ca.pem".into()),
        _ => None,
    })
    .unwrap();
    let error = kinesis_es_indexer::elasticsearch::Elasticsearch::new(&config, None).unwrap_err();
    assert!(error.to_string().contains("ES_CA_CERT /nonexistent/ca.pem"), "{error}");
}
