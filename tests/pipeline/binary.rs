//! The shipped `bootstrap` binary under the Lambda Runtime API, as Lambda runs it: cold start from the environment,
//! the runtime loop, and the exact JSON of the partial batch response.

use std::process::{Child, Command};
use std::time::Duration;

use serde_json::json;
use testkit::{Answer, EsDouble, LambdaApiDouble};

use crate::support::*;

/// The function process, and the file its standard output (its log) goes to (standard error to the same path
/// with `.err`); killed when dropped.
pub(crate) struct Function(Child, std::path::PathBuf);

impl Function {
    /// The log lines written so far, as JSON.
    fn log_lines(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.1).unwrap_or_default();
        text.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
    }

    /// Everything the process wrote so far, standard output then standard error.
    fn output(&self) -> String {
        let stdout = std::fs::read_to_string(&self.1).unwrap_or_default();
        stdout + &std::fs::read_to_string(self.1.with_extension("err")).unwrap_or_default()
    }
}

impl Function {
    /// The most resident memory the process has used (VmHWM), in bytes.
    fn peak_rss(&self) -> usize {
        testkit::peak_rss(self.0.id())
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_file(&self.1);
        let _ = std::fs::remove_file(self.1.with_extension("err"));
    }
}

pub(crate) fn start_function(api: &LambdaApiDouble, env: &[(&str, &str)]) -> Function {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = std::env::temp_dir().join(format!("kinesis-es-indexer-function-{}-{n}.log", std::process::id()));
    let stdout = std::fs::File::create(&log).expect("a log file");
    let stderr = std::fs::File::create(log.with_extension("err")).expect("an error file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_bootstrap"));
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "kinesis-es-indexer")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/22/[$LATEST]test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/kinesis-es-indexer")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .stdout(stdout)
        .stderr(stderr);
    for (name, value) in env {
        command.env(name, value);
    }
    Function(command.spawn().expect("the bootstrap binary starts"), log)
}

#[tokio::test]
async fn the_binary_answers_lambda_with_the_sequence_numbers_to_redeliver() {
    let es = EsDouble::start().await;
    es.set_index_fault("logs-2026.11.22", Some(testkit::IndexFault::FloodStage));
    let api = LambdaApiDouble::start().await;
    let _function = start_function(&api, &[("ES_URL", &es.url())]);
    let payloads =
        json_payloads(&[json!({"@timestamp": "2026-11-21T10:00:00Z"}), json!({"@timestamp": "2026-11-22T10:00:00Z"})]);
    let event = lambda_event(&payloads);

    let first = api.invoke(&event, Duration::from_secs(30));
    let second = api.invoke(&event, Duration::from_secs(30));
    let answers = api.answers(2, Duration::from_secs(30)).await;

    assert_eq!(
        answers,
        vec![
            Answer::Response {
                request_id: first,
                body: json!({"batchItemFailures": [{"itemIdentifier": sequence(1)}]})
            },
            Answer::Response {
                request_id: second,
                body: json!({"batchItemFailures": [{"itemIdentifier": sequence(1)}]})
            },
        ]
    );
    assert_eq!(es.count(), 1);
    assert_eq!(es.connections(), 1, "the connection opened at the first invocation is reused by the second");
}

#[tokio::test]
async fn s34_the_binary_behind_a_proxy_that_closes_on_a_large_body_indexes_every_record_and_never_wedges() {
    let es = EsDouble::start().await;
    let proxy = testkit::BodyLimitProxy::start(&es.url(), 128 * 1024).await;
    let api = LambdaApiDouble::start().await;
    let _function = start_function(&api, &[("ES_URL", &proxy.url()), ("ES_COMPRESSION", "none")]);
    // Two batches of 2,000 records of about 1 KiB: 2 MB requests at the defaults, sixteen times the proxy's limit.
    let records = 2000;
    let payloads: Vec<Vec<u8>> =
        (0..2 * records).map(|i| json!({"i": i, "filler": "y".repeat(1000)}).to_string().into_bytes()).collect();
    let mut invocations = 0;
    for batch in payloads.chunks(records).enumerate().map(|(n, part)| event_from(n * records, part)) {
        let mut pending = Some(batch);
        let mut deliveries = 0;
        while let Some(delivered) = pending.take() {
            deliveries += 1;
            assert!(deliveries <= 3, "the shard is wedged: {deliveries} deliveries of one batch");
            let request_id = api.invoke(&body_of(delivered.records_json()), Duration::from_secs(30));
            invocations += 1;
            let answers = api.answers(invocations, Duration::from_secs(60)).await;
            let Some(Answer::Response { request_id: answered, body }) = answers.get(invocations - 1) else {
                panic!("the invocation failed: {answers:?}")
            };
            assert_eq!(answered, &request_id);
            let failures = body["batchItemFailures"].as_array().expect("a partial batch response");
            if let Some(lowest) = failures
                .iter()
                .filter_map(|f| f["itemIdentifier"].as_str())
                .min_by(|a, b| compare_sequence_numbers(a, b))
            {
                let records = delivered.records_json().into_iter().skip_while(|raw| !raw.contains(lowest));
                pending = Some(event_of(records));
            }
        }
    }
    assert!(proxy.refused() >= 1, "the proxy refused bodies over its limit");
    assert_eq!(es.count(), 2 * records, "every record indexed");
    assert_eq!(es.max_attempts_per_document(), 1, "and none written twice");
}

#[tokio::test]
async fn every_log_line_of_an_invocation_carries_its_request_id() {
    let es = EsDouble::start().await;
    es.set_index_fault("logs-2026.11.22", Some(testkit::IndexFault::FloodStage));
    let api = LambdaApiDouble::start().await;
    let function = start_function(&api, &[("ES_URL", &es.url())]);
    let event = lambda_event(&plain_payloads(2));

    let first = api.invoke(&event, Duration::from_secs(30));
    let second = api.invoke(&event, Duration::from_secs(30));
    api.answers(2, Duration::from_secs(30)).await;

    let lines = function.log_lines();
    let of = |request_id: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|line| line["span"]["requestId"] == request_id)
            .map(|line| line["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    for request_id in [&first, &second] {
        let messages = of(request_id);
        assert!(messages.iter().any(|m| m.starts_with("Records go back to Kinesis")), "{request_id}: {messages:?}");
        assert!(messages.iter().any(|m| m == "Batch done"), "{request_id}: {messages:?}");
    }
    let ready = lines.iter().find(|line| line["message"] == "Ready").expect("the cold start's line");
    assert!(ready.get("span").is_none(), "the cold start belongs to no invocation");
}

#[tokio::test]
async fn a_body_that_is_not_a_kinesis_event_fails_that_invocation_with_its_reason_and_the_next_one_is_handled() {
    let es = EsDouble::start().await;
    let api = LambdaApiDouble::start().await;
    let function = start_function(&api, &[("ES_URL", &es.url())]);
    let sqs = r#"{"Records":{"messageId":"1"}}"#;

    let refused = api.invoke(sqs, Duration::from_secs(30));
    let handled = api.invoke(&lambda_event(&plain_payloads(2)), Duration::from_secs(30));
    let answers = api.answers(2, Duration::from_secs(30)).await;

    let Answer::InvocationError { request_id, body } = &answers[0] else { panic!("{answers:?}") };
    assert_eq!(request_id, &refused);
    assert_eq!(body["errorType"], "InvalidEvent");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("not a Kinesis event") && message.contains("invalid type: map"), "{message}");
    assert_eq!(answers[1], Answer::Response { request_id: handled, body: json!({"batchItemFailures": []}) });
    assert_eq!(es.count(), 2, "the body of the refused invocation is not mistaken for the next one's");
    let lines = function.log_lines();
    let error = lines.iter().find(|l| {
        l["level"] == "ERROR" && l["message"].as_str().unwrap().starts_with("The invocation's event cannot be read")
    });
    let error = error.unwrap_or_else(|| panic!("an ERROR line says why: {lines:?}"));
    assert!(error["error"].as_str().unwrap().contains("invalid type: map"), "{error}");
    assert_eq!(error["span"]["requestId"], refused.as_str(), "the ERROR line names the invocation");
}

#[tokio::test]
async fn s26_the_binary_with_lambdas_shortest_common_timeouts_indexes_normally() {
    let es = EsDouble::start().await;
    let api = LambdaApiDouble::start().await;
    let _function = start_function(&api, &[("ES_URL", &es.url()), ("DEADLINE_MARGIN_MS", "2000")]);
    let event = lambda_event(&plain_payloads(3));

    // The deadline header says 2 s and then 3 s (Lambda's default timeout) from now.
    let two = api.invoke(&event, Duration::from_secs(2));
    let three = api.invoke(&event, Duration::from_secs(3));
    let answers = api.answers(2, Duration::from_secs(30)).await;

    assert_eq!(
        answers,
        vec![
            Answer::Response { request_id: two, body: json!({"batchItemFailures": []}) },
            Answer::Response { request_id: three, body: json!({"batchItemFailures": []}) },
        ]
    );
    assert_eq!(es.count(), 3);
}

#[tokio::test]
async fn a_missing_es_url_stops_the_cold_start_with_an_error_naming_it() {
    let api = LambdaApiDouble::start().await;
    let _function = start_function(&api, &[]);

    let answers = api.answers(1, Duration::from_secs(30)).await;

    let [Answer::InitError { body }] = answers.as_slice() else { panic!("expected an init error, got {answers:?}") };
    assert_eq!(body["errorType"], "ConfigurationError");
    assert!(body["errorMessage"].as_str().unwrap().contains("ES_URL: is required"), "{body}");
}

/// A test event with these payloads, as the JSON text Lambda sends.
fn lambda_event(payloads: &[Vec<u8>]) -> String {
    body_of(event(payloads).records_json())
}

/// gzip'd CloudWatch Logs envelopes of `events` log events of 16 KiB each (repetitive, as logs are: they compress to
/// a few percent of their size).
fn inflating_payloads(records: usize, events: usize) -> (Vec<Vec<u8>>, usize) {
    let message: String = "GET /api/orders/42 200 user=alice agent=okhttp ".chars().cycle().take(16 * 1024).collect();
    let mut inflated = 0;
    let payloads = (0..records)
        .map(|r| {
            let log_events: Vec<serde_json::Value> = (0..events)
                .map(|e| json!({"id": format!("{r}{e:06}"), "timestamp": 1_795_400_000_000u64 + e as u64, "message": message}))
                .collect();
            let envelope = json!({"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "/app",
                "logStream": "s", "subscriptionFilters": ["f"], "logEvents": log_events})
            .to_string();
            inflated += envelope.len();
            gzip(envelope.as_bytes())
        })
        .collect();
    (payloads, inflated)
}

/// FAULTS 30: the function's memory follows the chunks it sends, not the batch's inflated size. A batch of under
/// 2 MB that inflates to 64 MB, sent in 1 MB requests: with every document decoded at once, or every source kept
/// until the end, the process holds about 95 MB; decoding chunk by chunk and releasing what was sent, about 40 MB
/// (its idle size, the event, one record inflating, a few chunks). Two worker threads, as on a small Lambda.
#[tokio::test]
async fn s30_a_batch_inflating_to_64_mb_needs_the_memory_of_a_few_chunks() {
    let es = EsDouble::start().await;
    es.set_keep_sources(false);
    let api = LambdaApiDouble::start().await;
    let (records, events) = (16, 256);
    let (payloads, inflated) = inflating_payloads(records, events);
    let event = lambda_event(&payloads);
    assert!(inflated > 64 << 20 && event.len() < 2 << 20, "{inflated} bytes from {}", event.len());
    let function = start_function(
        &api,
        &[
            ("ES_URL", &es.url()),
            ("ES_COMPRESSION", "none"),
            ("BULK_MAX_BYTES", &(1 << 20).to_string()),
            ("TOKIO_WORKER_THREADS", "2"),
        ],
    );

    api.invoke(&event, Duration::from_secs(120));
    let answers = api.answers(1, Duration::from_secs(120)).await;

    assert!(matches!(&answers[..], [Answer::Response { body, .. }] if body == &json!({"batchItemFailures": []})));
    assert_eq!(es.count(), records * events);
    let peak = function.peak_rss();
    assert!(
        peak < inflated,
        "{:.1} MB resident for a batch inflating to {} MB",
        peak as f64 / 1_048_576.0,
        inflated >> 20
    );
}

/// Secrets no message may hold, in every credential-bearing setting: distinctive values, so that a leak anywhere
/// (a log line at TRACE, an init error, a refusal) is found, as is their base64 (what an `Authorization` header
/// carries).
const URL_PASSWORD: &str = "Url-Pw-7f3a9c";
const PASSWORD: &str = "Basic-Pw-51e0d2";
const API_KEY: &str = "QXBpS2V5LTljNGIx";
const SECRET_IN_THE_WRONG_PLACE: &str = "Pasted-Secret-2b8e77";
const SECRET_ACCESS_KEY: &str = "Aws-Secret-Key-c61f04";
const SESSION_TOKEN: &str = "Aws-Session-Token-93d2aa";

fn assert_no_secret(what: &str, text: &str) {
    use base64::Engine;
    let encode = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for secret in [URL_PASSWORD, PASSWORD, API_KEY, SECRET_IN_THE_WRONG_PLACE, SECRET_ACCESS_KEY, SESSION_TOKEN] {
        for form in [secret.to_owned(), encode(secret), encode(&format!("indexer:{secret}"))] {
            assert!(!text.contains(&form), "{what} shows {form:?}:\n{text}");
        }
    }
}

/// Runs the function with `env` (at TRACE, JSON logs) on one batch, or until its cold start fails; returns all it
/// wrote and every answer the Runtime API double received.
async fn run_and_collect(es: &EsDouble, env: &[(&str, &str)]) -> (String, String) {
    let api = LambdaApiDouble::start().await;
    let url = es.url();
    let mut all: Vec<(&str, &str)> = vec![("ES_URL", &url), ("RUST_LOG", "trace"), ("AWS_REGION", "eu-west-1")];
    all.extend_from_slice(env);
    let function = start_function(&api, &all);
    let payloads = json_payloads(&[json!({"@timestamp": "2026-11-22T10:00:00Z", "n": 1})]);
    api.invoke(&lambda_event(&payloads), Duration::from_secs(10));
    let answers = api.answers(1, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    (function.output(), format!("{answers:?}"))
}

/// No secret in any message (issue 10): every credential-bearing setting holds a distinctive value, every refusal
/// and failure path is driven at TRACE level, and none of the values (nor their base64) appears in the function's
/// output or in what it reports to Lambda. The cold start's last line is the error in its `Display` form.
#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_a_message_on_any_refusal_or_failure_path() {
    let es = EsDouble::start().await;

    // A URL with credentials: refused at cold start, quoted with `***@`.
    let url_with_password = format!("https://indexer:{URL_PASSWORD}@search-logs-abc.eu-west-1.es.amazonaws.com");
    let (output, answers) = run_and_collect(&es, &[("ES_URL", &url_with_password)]).await;
    assert_no_secret("an ES_URL with credentials", &(output.clone() + &answers));
    assert!(answers.contains("ConfigurationError") && answers.contains("***@search-logs"), "{answers}");
    assert!(!output.contains("ConfigError {"), "no Debug form:\n{output}");
    let (output, _) = run_and_collect(&es, &[("ES_URL", &url_with_password), ("RUST_LOG", "info")]).await;
    let last = output.lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default();
    assert!(last.contains("Cold start failed") && last.contains("ES_URL: needs a host"), "the last line: {last}");

    // The secret pasted where its ARN belongs.
    let pasted = format!(r#"{{"username":"indexer","password":"{SECRET_IN_THE_WRONG_PLACE}"}}"#);
    let (output, answers) = run_and_collect(&es, &[("ES_SECRET_ARN", &pasted)]).await;
    assert_no_secret("a secret in ES_SECRET_ARN", &(output + &answers));

    // Basic credentials and an API key the cluster refuses (401), and the records going back.
    es.require_basic_auth(Some(("someone", "else")));
    let (output, answers) = run_and_collect(&es, &[("ES_USERNAME", "indexer"), ("ES_PASSWORD", PASSWORD)]).await;
    assert!(output.contains("security_exception"), "the 401 path ran:\n{output}");
    assert_no_secret("basic credentials refused", &(output + &answers));
    let (output, answers) = run_and_collect(&es, &[("ES_API_KEY", API_KEY)]).await;
    assert!(output.contains("security_exception"), "the 401 path ran:\n{output}");
    assert_no_secret("an API key refused", &(output + &answers));
    es.require_basic_auth(None);

    // SigV4 with session credentials the cluster refuses (403), and Firehose unreachable for 429'd documents.
    es.set_write_queue(Some(0));
    let aws = [
        ("ES_AUTH", "sigv4"),
        ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEINDEXER"),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
        ("FIREHOSE_STREAM_NAME", "retry-later"),
        ("AWS_ENDPOINT_URL_FIREHOSE", "http://127.0.0.1:9"),
    ];
    let (output, answers) = run_and_collect(&es, &aws).await;
    assert!(output.contains("retry-later"), "the Firehose path ran:\n{output}");
    assert_no_secret("SigV4 and Firehose failing", &(output + &answers));
    if crate::support::python_has(&["botocore"]) {
        es.set_write_queue(None);
        es.require_sigv4(testkit::SigV4Check {
            region: "eu-west-1".into(),
            service: "es".into(),
            credentials: vec![("AKIAOTHER".into(), "other-secret".into(), None)],
        });
        let (output, answers) = run_and_collect(&es, &aws).await;
        assert!(output.contains("403") || output.contains("signature"), "the 403 path ran:\n{output}");
        assert_no_secret("a signature refused", &(output + &answers));
    }
}

#[tokio::test]
async fn the_binary_keeps_a_rejected_document_in_the_dead_letter_its_cold_start_configured() {
    let es = EsDouble::start().await;
    es.map_field("logs-2026.11.22", "latency_ms", "long");
    let s3 = testkit::S3Double::start().await;
    let api = LambdaApiDouble::start().await;
    let _function = start_function(
        &api,
        &[
            ("ES_URL", &es.url()),
            ("DEAD_LETTER_BUCKET", "stack-failedbatchesbucket-1a2b3c"),
            ("AWS_ENDPOINT_URL_S3", &s3.url()),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDTEST"),
            ("AWS_SECRET_ACCESS_KEY", "test-secret"),
        ],
    );
    let sent = json!({"@timestamp": "2026-11-22T10:00:00Z", "latency_ms": "slow"});
    let request_id = api.invoke(&lambda_event(&json_payloads(std::slice::from_ref(&sent))), Duration::from_secs(30));
    let answers = api.answers(1, Duration::from_secs(30)).await;

    assert_eq!(answers, [Answer::Response { request_id, body: json!({"batchItemFailures": []}) }]);
    let objects = s3.objects();
    assert_eq!(objects.len(), 1, "one object, path-style in the bucket the cold start read");
    assert!(objects[0].0.starts_with("stack-failedbatchesbucket-1a2b3c/rejected-documents/"), "{}", objects[0].0);
    let line: serde_json::Value = serde_json::from_slice(objects[0].1.trim_ascii_end()).unwrap();
    assert_eq!(line["esDocumentId"], doc_id(0, 0));
}

/// The level Lambda's log-level filtering gives a JSON line: its `level` when that is one of Lambda's and the line
/// has an RFC 3339 `timestamp`; else INFO (Lambda's "Log-level filtering" page).
fn level_lambda_reads(line: &serde_json::Value) -> usize {
    const LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let stamped = line["timestamp"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok());
    let named = line["level"].as_str().and_then(|l| LEVELS.iter().position(|known| known.eq_ignore_ascii_case(l)));
    match (stamped, named) {
        (true, Some(position)) => position,
        _ => 2,
    }
}

/// The messages template.yaml's metric filters read (`{ $.message = "…" }`, a trailing `*` a prefix), and the
/// `LogLevel` values it allows.
fn metric_messages_and_log_levels() -> (Vec<String>, Vec<String>) {
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml")).unwrap();
    let filters = regex::Regex::new(r#"FilterPattern: '\{ \$\.message = "([^"]+)"[^']*\}'"#).unwrap();
    let messages: Vec<String> = filters.captures_iter(&template).map(|c| c[1].to_owned()).collect();
    assert_eq!(
        messages.len(),
        template.matches("Type: AWS::Logs::MetricFilter").count(),
        "a metric filter this test cannot read"
    );
    let block = template.split("\n  LogLevel:\n").nth(1).unwrap().split("\n  LogRetentionDays:").next().unwrap();
    let allowed = regex::Regex::new(r"AllowedValues: \[([^\]]+)\]").unwrap();
    let levels = allowed.captures(block).unwrap()[1].split(',').map(|l| l.trim().to_owned()).collect();
    (messages, levels)
}

#[tokio::test]
async fn no_allowed_log_level_drops_a_line_a_metric_is_made_of_or_an_error() {
    let (messages, levels) = metric_messages_and_log_levels();
    assert!(levels.contains(&"WARN".to_owned()) && levels.contains(&"ERROR".to_owned()), "{levels:?}");
    for configured in &levels {
        let es = EsDouble::start().await;
        // Every item "retry later" and no Firehose: saturated, back to Kinesis with an ERROR line, then a summary.
        es.set_index_fault(
            "logs-2026.11.22",
            Some(testkit::IndexFault::Refuse(429, "es_rejected_execution_exception")),
        );
        let api = LambdaApiDouble::start().await;
        let function = start_function(&api, &[("ES_URL", &es.url()), ("AWS_LAMBDA_LOG_LEVEL", configured)]);
        api.invoke(&lambda_event(&plain_payloads(4)), Duration::from_secs(30));
        api.answers(1, Duration::from_secs(30)).await;
        // A healthy stack's canary, as the schedule puts it: CanaryAlarm reads its age from the summary line.
        es.set_index_fault("logs-2026.11.22", None);
        let canary = json!({"kinesis_es_indexer_canary": true, "message": "kinesis-es-indexer canary"});
        api.invoke(&lambda_event(&json_payloads(&[canary])), Duration::from_secs(30));
        api.answers(2, Duration::from_secs(30)).await;

        let threshold =
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"].iter().position(|l| l == configured).unwrap();
        let lines = function.log_lines();
        let kept: Vec<&serde_json::Value> = lines.iter().filter(|line| level_lambda_reads(line) >= threshold).collect();
        let kept_messages: Vec<&str> = kept.iter().filter_map(|line| line["message"].as_str()).collect();
        for message in &messages {
            let matches = |m: &&str| match message.strip_suffix('*') {
                Some(prefix) => m.starts_with(prefix),
                None => m == message,
            };
            assert!(
                kept_messages.iter().any(matches),
                "at LogLevel {configured} Lambda drops every {message:?} line: {kept_messages:?}"
            );
        }
        assert!(
            kept.iter().any(|line| line["message"] == "Batch done" && line["canary_age_ms"].is_u64()),
            "at LogLevel {configured} the canary's age is on no summary line Lambda keeps: CanaryAlarm would fire"
        );
        for line in lines.iter().filter(|line| line["level"] == "ERROR") {
            assert!(
                level_lambda_reads(line) >= threshold.min(4),
                "an ERROR line Lambda reads as below {configured}: {line}"
            );
        }
    }
}

#[tokio::test]
async fn a_set_up_event_puts_the_project_s_pipeline_and_templates_from_inside_and_nothing_else() {
    let es = EsDouble::start().await;
    let api = LambdaApiDouble::start().await;
    let function = start_function(&api, &[("ES_URL", &es.url())]);
    let read = |name: &str| -> serde_json::Value {
        let path = format!("{}/deploy/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let mut firehose_template = read("firehose-index-template.json");
    firehose_template["index_patterns"] = json!(["kinesis-es-indexer-firehose*"]);
    let event = json!({"kinesis_es_indexer_setup": {"requests": [
        {"path": "_ingest/pipeline/kinesis-es-indexer-firehose", "body": read("firehose-pipeline.json")},
        {"path": "/_index_template/kinesis-es-indexer-firehose", "body": firehose_template},
        {"path": "_cluster/settings", "body": {"persistent": {"action.auto_create_index": false}}},
    ]}});
    api.invoke(&event.to_string(), Duration::from_secs(30));
    let answers = api.answers(1, Duration::from_secs(30)).await;
    let Some(Answer::Response { body, .. }) = answers.first() else { panic!("no answer: {answers:?}") };
    let outcomes = body["setup"].as_array().expect("one outcome per request");
    let statuses: Vec<Option<u64>> = outcomes.iter().map(|o| o["status"].as_u64()).collect();
    assert_eq!(statuses, [Some(200), Some(200), None], "{body}");
    assert!(outcomes[2]["answer"].as_str().unwrap().starts_with("not sent"), "{body}");
    assert!(es.has_pipeline("kinesis-es-indexer-firehose"));
    let templates = es.index_templates();
    assert!(
        templates
            .contains(&(vec!["kinesis-es-indexer-firehose*".to_owned()], "kinesis-es-indexer-firehose".to_owned())),
        "{templates:?}"
    );
    let refused = function.log_lines().into_iter().filter(|line| line["level"] == "ERROR").count();
    assert_eq!(refused, 1, "the refused path is named at ERROR");
}

#[tokio::test]
async fn make_firehose_pipeline_and_index_template_with_remote_put_them_through_the_deployed_function() {
    if !python_has(&["boto3"]) {
        return;
    }
    let es = EsDouble::start().await;
    let api = LambdaApiDouble::start().await;
    let _function = start_function(&api, &[("ES_URL", &es.url())]);
    let run = |script: &'static str, extra: Vec<(&'static str, &'static str)>| {
        let invoke_url = api.invoke_url();
        tokio::task::spawn_blocking(move || {
            let mut command = Command::new("python3");
            command
                .arg(format!("scripts/{script}"))
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env("REMOTE", "1")
                .env("FUNCTION", "kinesis-es-indexer")
                .env("AWS_ENDPOINT_URL_LAMBDA", invoke_url)
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_DEFAULT_REGION", "eu-west-1")
                .env_remove("ES_URL");
            command.envs(extra).output().expect("python3 runs")
        })
    };
    let pipeline = run("firehose_pipeline.py", vec![("FIREHOSE_INDEX_NAME", "retry-later")]).await.unwrap();
    let printed = String::from_utf8_lossy(&pipeline.stdout).into_owned() + &String::from_utf8_lossy(&pipeline.stderr);
    assert!(pipeline.status.success(), "{printed}");
    assert!(es.has_pipeline("kinesis-es-indexer-firehose"), "{printed}");
    assert!(
        es.index_templates().contains(&(vec!["retry-later*".to_owned()], "kinesis-es-indexer-firehose".to_owned()))
    );
    let template = run("index_template.py", vec![("ES_INDEX", "app-%Y.%m.%d")]).await.unwrap();
    let printed = String::from_utf8_lossy(&template.stdout).into_owned() + &String::from_utf8_lossy(&template.stderr);
    assert!(template.status.success(), "{printed}");
    assert!(printed.contains("PUT /_index_template/kinesis-es-indexer through kinesis-es-indexer: 200"), "{printed}");
}
