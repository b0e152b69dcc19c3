//! SigV4 against a check that does not trust our signer: the double recomputes every signature with botocore and
//! answers 403 on a mismatch, as Amazon OpenSearch Service does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use kinesis_es_indexer::Outcome::*;
use testkit::SigV4Check;

use crate::support::*;

/// Hands out these credentials in turn, the last one from then on: a provider chain that refreshed.
#[derive(Debug)]
struct Rotating {
    credentials: Vec<Credentials>,
    /// How many times credentials were asked for; shared with the test.
    asked: Arc<AtomicUsize>,
}

impl ProvideCredentials for Rotating {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let turn = self.asked.fetch_add(1, Ordering::SeqCst).min(self.credentials.len() - 1);
        future::ProvideCredentials::ready(Ok(self.credentials[turn].clone()))
    }
}

pub(crate) fn credentials(access_key: &str, secret: &str, token: Option<&str>) -> Credentials {
    Credentials::new(access_key, secret, token.map(str::to_owned), None, "test")
}

/// A provider handing out `credentials` in turn, and the count of times it was asked.
fn provider(credentials: Vec<Credentials>) -> (SharedCredentialsProvider, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    (SharedCredentialsProvider::new(Rotating { credentials, asked: asked.clone() }), asked)
}

const SIGV4: [(&str, &str); 2] = [("ES_AUTH", "sigv4"), ("AWS_REGION", "eu-west-1")];

/// A harness whose double requires SigV4 by `accepted`, and whose indexer signs with `signing`; `path_prefix` is
/// appended to the double's URL in `ES_URL`. `None`, the test skipped with the reason printed, when python3 has no
/// botocore to check signatures with (under `make test`, which installs it, that fails instead).
pub(crate) async fn signed_harness(
    accepted: &[(&str, &str, Option<&str>)],
    signing: Vec<Credentials>,
    extra: &[(&str, &str)],
    path_prefix: &str,
) -> Option<(Harness, Arc<AtomicUsize>)> {
    if !crate::support::python_has(&["botocore"]) {
        return None;
    }
    let h = Harness::start(&[]).await;
    let url = format!("{}{path_prefix}", h.es.url());
    h.es.require_sigv4(SigV4Check {
        region: "eu-west-1".into(),
        service: "es".into(),
        credentials: accepted.iter().map(|(a, s, t)| (a.to_string(), s.to_string(), t.map(str::to_owned))).collect(),
    });
    let (shared, asked) = provider(signing);
    let overrides: Vec<(&str, &str)> = SIGV4.iter().chain(extra).copied().chain([("ES_URL", url.as_str())]).collect();
    let deps = deps_with_aws_credentials(&h.es, Some(&h.firehose), &overrides, Some(shared));
    Some((Harness { deps, ..h }, asked))
}

fn signing_key(request: &testkit::elasticsearch::ReceivedRequest) -> String {
    let authorization = request.headers["authorization"].to_str().unwrap();
    authorization.split("Credential=").nth(1).unwrap().split('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_compressed_body_signed_with_a_session_token_passes_botocores_check() {
    let Some((h, _)) = signed_harness(
        &[("ASIATEST", "secret-1", Some("token-1"))],
        vec![credentials("ASIATEST", "secret-1", Some("token-1"))],
        &[],
        "",
    )
    .await
    else {
        return;
    };

    let report = h.deliver(&event(&plain_payloads(3))).await;

    assert_eq!(outcomes(&report), vec![Indexed; 3], "{:?}", report.records[0].fate.failure);
    let request = &h.es.requests()[0];
    assert_eq!(request.headers["content-encoding"], "gzip", "the signature covers the compressed bytes");
    assert_eq!(request.headers["x-amz-security-token"], "token-1");
}

#[tokio::test]
async fn a_plain_body_under_a_path_prefix_passes_botocores_check() {
    let accepted = [("AKIATEST", "secret", None)];
    let Some((h, _)) = signed_harness(
        &accepted,
        vec![credentials("AKIATEST", "secret", None)],
        &[("ES_COMPRESSION", "none")],
        "/search",
    )
    .await
    else {
        return;
    };

    let report = h.deliver(&event(&plain_payloads(2))).await;

    assert_eq!(outcomes(&report), vec![Indexed; 2]);
    assert_eq!(h.es.requests()[0].path, "/search/_bulk");
}

#[tokio::test]
async fn a_wrong_signature_is_refused_and_the_batch_goes_back_with_the_reason() {
    let logs = Logs::capture();
    let Some((h, _)) = signed_harness(
        &[("AKIATEST", "the-real-secret", None)],
        vec![credentials("AKIATEST", "a-stale-secret", None)],
        &[],
        "",
    )
    .await
    else {
        return;
    };

    let report = h.deliver(&event(&plain_payloads(2))).await;

    assert_eq!(outcomes(&report), vec![BackToKinesis; 2]);
    assert_eq!(h.es.count(), 0);
    let errors = logs.matching("ERROR", "Records go back to Kinesis");
    assert_eq!(errors[0]["status"], 403);
    assert!(errors[0]["reason"].as_str().unwrap().contains("signature we calculated does not match"), "{}", errors[0]);
}

#[tokio::test]
async fn credentials_that_change_between_requests_are_the_ones_used() {
    let accepted = [("ASIAFIRST", "secret-1", Some("token-1")), ("ASIASECOND", "secret-2", Some("token-2"))];
    let signing = vec![
        credentials("ASIAFIRST", "secret-1", Some("token-1")),
        credentials("ASIASECOND", "secret-2", Some("token-2")),
    ];
    let Some((h, asked)) =
        signed_harness(&accepted, signing, &[("BULK_MAX_DOCS", "2"), ("BULK_CONCURRENCY", "1")], "").await
    else {
        return;
    };

    let report = h.deliver(&event(&plain_payloads(4))).await;

    assert_eq!(outcomes(&report), vec![Indexed; 4]);
    let keys: Vec<String> = h.es.requests().iter().map(signing_key).collect();
    assert_eq!(keys, ["ASIAFIRST", "ASIASECOND"], "asked of the provider on every request, never kept");
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    assert_eq!(h.es.requests()[1].headers["x-amz-security-token"], "token-2");
}

mod secrets_manager {
    use aws_sdk_secretsmanager::Client;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use kinesis_es_indexer::Outcome::*;
    use kinesis_es_indexer::secret::SecretCredentials;

    use crate::support::*;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:es-indexer-AbCdEf";

    #[tokio::test]
    async fn a_rotated_secret_is_read_again_after_a_401_and_never_logged() {
        let logs = Logs::capture();
        let before =
            mock!(Client::get_secret_value).match_requests(|input| input.secret_id() == Some(ARN)).then_output(|| {
                GetSecretValueOutput::builder()
                    .secret_string(r#"{"username":"indexer","password":"old-s3cret"}"#)
                    .build()
            });
        let after = mock!(Client::get_secret_value).then_output(|| {
            GetSecretValueOutput::builder().secret_string(r#"{"username":"indexer","password":"new-s3cret"}"#).build()
        });
        let client = mock_client!(aws_sdk_secretsmanager, RuleMode::Sequential, &[&before, &after]);
        let h = Harness::start(&[("ES_SECRET_ARN", ARN)]).await;
        let secret = SecretCredentials::new(client, ARN.into());
        secret.apply(&h.deps.elasticsearch).await.unwrap();
        let h = Harness { deps: kinesis_es_indexer::Deps { secret: Some(secret), ..h.deps.clone() }, ..h };
        h.es.require_basic_auth(Some(("indexer", "old-s3cret")));
        assert_eq!(outcomes(&h.deliver(&event(&plain_payloads(1))).await), vec![Indexed]);

        // The secret is rotated: the cluster refuses the old password.
        h.es.require_basic_auth(Some(("indexer", "new-s3cret")));
        let event = event_from(1, &plain_payloads(2));
        let refused = h.deliver(&event).await;
        assert_eq!(outcomes(&refused), vec![BackToKinesis; 2]);
        let redelivered = h.deliver(&redelivery(&event, &refused).unwrap()).await;

        assert_eq!(outcomes(&redelivered), vec![Indexed; 2]);
        assert_eq!(
            (before.num_calls(), after.num_calls()),
            (1, 1),
            "read at cold start and once after the 401, not per invocation"
        );
        let all_logs = serde_json::to_string(&logs.lines()).unwrap();
        assert!(!all_logs.contains("s3cret"), "a secret reached the logs");
        assert_eq!(logs.matching("INFO", "Credentials re-read from Secrets Manager").len(), 1);
    }

    /// A Secrets Manager that accepts connections and never answers: the re-read after a 401 must not outlast the
    /// invocation (the SDK has no operation timeout of its own).
    #[tokio::test]
    async fn a_secret_that_cannot_be_read_again_in_time_never_outlasts_the_invocation() {
        let logs = Logs::capture();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                held.push(connection);
            }
        });
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new("AKID", "s", None, None, "test"))
            .endpoint_url(format!("http://{address}"))
            .build();
        let h = Harness::start(&[("ES_SECRET_ARN", ARN)]).await;
        let secret = SecretCredentials::new(Client::from_conf(config), ARN.into());
        let h = Harness { deps: kinesis_es_indexer::Deps { secret: Some(secret), ..h.deps.clone() }, ..h };
        h.es.require_basic_auth(Some(("indexer", "rotated")));

        let budget = std::time::Duration::from_secs(2);
        let report = tokio::time::timeout(budget * 10, h.deliver_within(&event(&plain_payloads(2)), budget))
            .await
            .expect("the invocation ends by its deadline, whatever Secrets Manager does");
        silent.abort();

        assert_eq!(outcomes(&report), vec![BackToKinesis; 2], "refused with 401: kept in the stream");
        assert_eq!(logs.matching("ERROR", "Credentials could not be re-read after a 401").len(), 1);
    }
}

/// Runs `make firehose-pipeline`'s script with `env` (and nothing else of this process's AWS settings).
async fn firehose_pipeline_script(env: Vec<(String, String)>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new("python3");
        command.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/firehose_pipeline.py"));
        for name in ["AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "ES_AUTH"] {
            command.env_remove(name);
        }
        command.env("AWS_CONFIG_FILE", "/nonexistent").env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
        command.envs(env).output().expect("python3 runs")
    })
    .await
    .unwrap()
}

/// `make firehose-pipeline` on a domain behind IAM: signed with SigV4 from the default credential chain (here the
/// environment), which botocore verifies in the double as the domain would; the index template follows the
/// delivery stream's index name.
#[tokio::test]
async fn the_firehose_pipeline_is_installed_on_a_sigv4_domain_for_the_deployed_index_name() {
    if !crate::support::python_has(&["botocore"]) {
        return;
    }
    let es = testkit::EsDouble::start().await;
    es.require_sigv4(SigV4Check {
        region: "eu-west-1".into(),
        service: "es".into(),
        credentials: vec![("AKIDPIPELINE".into(), "pipeline-secret".into(), Some("pipeline-token".into()))],
    });
    let env = |secret: &str| {
        [
            ("ES_URL", es.url()),
            ("ES_AUTH", "sigv4".to_owned()),
            ("AWS_REGION", "eu-west-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "AKIDPIPELINE".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", secret.to_owned()),
            ("AWS_SESSION_TOKEN", "pipeline-token".to_owned()),
            ("FIREHOSE_INDEX_NAME", "audit-retry".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect::<Vec<_>>()
    };

    let refused = firehose_pipeline_script(env("a-wrong-secret")).await;
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.starts_with("firehose-pipeline: PUT /_ingest/pipeline/") && said.contains("403"), "{said}");
    assert!(!es.has_pipeline("kinesis-es-indexer-firehose"));

    let installed = firehose_pipeline_script(env("pipeline-secret")).await;
    assert!(installed.status.success(), "{}", String::from_utf8_lossy(&installed.stderr));
    assert!(es.has_pipeline("kinesis-es-indexer-firehose"));
    assert_eq!(es.index_templates(), vec![(vec!["audit-retry*".to_owned()], "kinesis-es-indexer-firehose".to_owned())]);
}

#[tokio::test]
async fn the_firehose_pipeline_script_says_in_one_line_that_the_cluster_cannot_be_reached() {
    let env = vec![("ES_URL".to_owned(), "http://user:Pw-8c1e@127.0.0.1:9".to_owned())];
    let output = firehose_pipeline_script(env).await;
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && said.lines().count() == 1, "{said}");
    assert!(said.contains("must not carry user:password") && !said.contains("Pw-8c1e"), "{said}");
    let env = vec![("ES_URL".to_owned(), "http://127.0.0.1:9".to_owned())];
    let output = firehose_pipeline_script(env).await;
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && said.lines().count() == 1, "one line, no traceback: {said}");
    assert!(said.starts_with("firehose-pipeline: cannot reach http://127.0.0.1:9"), "{said}");
}
