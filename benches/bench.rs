//! `make bench`: the real `bootstrap` (release) under the Runtime API double, against the Elasticsearch double
//! answering at once, on generated batches; per batch kind: CPU time of the function process per record and per
//! document (mean over the runs after a warm-up), wall time (median), peak RSS (VmHWM) and the RSS the process had
//! when ready, requests and bytes sent; and cold start (exec to the first poll of the Runtime API), the median of
//! `BENCH_RUNS` starts measured first, while nothing else runs (a start right after a large batch measures the
//! machine clearing up after it). The same
//! batches go through the floor, an empty handler on `lambda_runtime` + `aws_lambda_events`
//! (`benches/floor/empty_handler.rs`), and the indexer's CPU is also quoted as a ratio to it, which holds on a noisy
//! machine. Not a timed test: it prints figures.
//!
//! `BENCH_RUNS` (default 5) invocations per kind after one warm-up; `BENCH_KINDS` (comma-separated names) selects
//! kinds; `BENCH_SMALL=1` makes every batch small (`make test` runs it so, in the debug profile, to keep it
//! working). Each kind gets fresh processes, so a peak RSS is that kind's.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use testkit::{Answer, EsDouble, LambdaApiDouble};

/// One batch kind: a Lambda event (with `{run}` where each run's stream name goes, so every run writes new ids),
/// and the function's settings for it beyond `ES_URL`.
struct Kind {
    name: &'static str,
    event: String,
    records: usize,
    documents: usize,
    env: &'static [(&'static str, &'static str)],
}

/// Lambda's limit for a synchronous invocation's payload is 6 MB (6,291,456 bytes); stay just under it, or make
/// small batches for the quick run in `make test`.
fn payload_limit() -> usize {
    if std::env::var_os("BENCH_SMALL").is_some() { 200_000 } else { 6_000_000 }
}

/// What a record's JSON adds to its base64 data in the event `lambda_event` writes (measured, rounded up).
const RECORD_OVERHEAD: usize = 560;

fn lambda_event(datas: &[Vec<u8>]) -> String {
    let mut event = String::from(r#"{"Records":["#);
    for (i, data) in datas.iter().enumerate() {
        if i > 0 {
            event.push(',');
        }
        let sequence = format!("4965634783421870634198342971804609343482374153{i:010}");
        write!(
            event,
            r#"{{"kinesis":{{"kinesisSchemaVersion":"1.0","partitionKey":"p{i}","sequenceNumber":"{sequence}","data":"{}","approximateArrivalTimestamp":{}.5}},"eventSource":"aws:kinesis","eventVersion":"1.0","eventID":"shardId-000000000000:{sequence}","eventName":"aws:kinesis:record","invokeIdentityArn":"arn:aws:iam::123456789012:role/indexer","awsRegion":"eu-west-1","eventSourceARN":"arn:aws:kinesis:eu-west-1:123456789012:stream/bench-{{run}}"}}"#,
            base64::engine::general_purpose::STANDARD.encode(data),
            1_795_400_000 + i
        )
        .unwrap();
    }
    event.push_str("]}");
    event
}

/// A log line as services write them: a request id, a path, numbers, a user agent; compresses as real logs do.
fn log_line(rng: &mut fastrand::Rng) -> String {
    const PATHS: [&str; 6] = ["/api/orders", "/api/cart", "/api/users", "/health", "/api/search", "/api/payments"];
    const AGENTS: [&str; 3] = ["Mozilla/5.0 (X11; Linux x86_64)", "okhttp/4.12.0", "python-requests/2.32.3"];
    format!(
        "{{\"level\":\"{}\",\"request_id\":\"{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}\",\"method\":\"GET\",\"path\":\"{}/{}\",\"status\":{},\"duration_ms\":{},\"bytes\":{},\"user\":\"u{}\",\"agent\":\"{}\"}}",
        if rng.u8(..) < 20 { "error" } else { "info" },
        rng.u32(..),
        rng.u16(..),
        rng.u16(..0x1000),
        rng.u16(..),
        rng.u64(..1 << 48),
        PATHS[rng.usize(..PATHS.len())],
        rng.u32(..100_000),
        [200, 200, 200, 201, 404, 500][rng.usize(..6)],
        rng.u32(1..2_000),
        rng.u32(..50_000),
        rng.u32(..5_000),
        AGENTS[rng.usize(..AGENTS.len())],
    )
}

/// Records made by `next` (the `n`th record's data from `n`) while the event stays within the payload limit.
fn up_to_the_limit(mut next: impl FnMut(usize) -> Vec<u8>) -> Vec<Vec<u8>> {
    let mut datas = Vec::new();
    let mut payload = 0;
    loop {
        let data = next(datas.len());
        payload += data.len().div_ceil(3) * 4 + RECORD_OVERHEAD;
        if payload > payload_limit() {
            return datas;
        }
        datas.push(data);
    }
}

fn kind(name: &'static str, datas: &[Vec<u8>], documents_per_record: usize) -> Kind {
    let records = datas.len();
    Kind { name, event: lambda_event(datas), records, documents: records * documents_per_record, env: &[] }
}

/// gzip'd CloudWatch Logs subscription envelopes of 100 log events each, up to Lambda's payload limit.
fn cloudwatch_logs() -> Kind {
    let mut rng = fastrand::Rng::with_seed(30);
    let datas = up_to_the_limit(|record| {
        let first = record * 100;
        let log_events: Vec<serde_json::Value> = (first..first + 100)
            .map(|event| {
                let id = 37_000_000_000_000_000_000_000_000_000_000_000_000u128 + event as u128;
                serde_json::json!({"id": id.to_string(), "timestamp": 1_795_400_000_000u64 + event as u64, "message": log_line(&mut rng)})
            })
            .collect();
        let envelope = serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "/aws/lambda/checkout",
            "logStream": "2026/11/23/[$LATEST]0123456789abcdef", "subscriptionFilters": ["to-kinesis"],
            "logEvents": log_events,
        });
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(envelope.to_string().as_bytes()).unwrap();
        gz.finish().unwrap()
    });
    kind("cloudwatch_logs_gzip", &datas, 100)
}

/// The same CloudWatch Logs batch with its messages (JSON objects) kept as strings (`MESSAGE_JSON=off`): the
/// difference to `cloudwatch_logs_gzip` (merged, the default) is the cost of structured messages.
fn cloudwatch_logs_strings() -> Kind {
    Kind { name: "cloudwatch_strings", env: &[("MESSAGE_JSON", "off")], ..cloudwatch_logs() }
}

/// The same CloudWatch Logs batch with every preprocessing feature on: messages merged, a filter that keeps all
/// (so every document is still sent, and the figure is the cost of matching), static fields and provenance.
fn cloudwatch_logs_all_features() -> Kind {
    const ALL: &[(&str, &str)] = &[
        ("FILTER_EXCLUDE", "healthcheck|ELB-HealthChecker"),
        ("ADD_FIELDS", r#"{"env":"prod","team":"payments","tags":["checkout"]}"#),
        ("ADD_KINESIS_METADATA", "true"),
    ];
    Kind { name: "cloudwatch_all_features", env: ALL, ..cloudwatch_logs() }
}

/// 1 KiB JSON documents, up to Lambda's payload limit.
fn json_1k() -> Kind {
    let mut rng = fastrand::Rng::with_seed(11);
    let datas = up_to_the_limit(|_| {
        let mut document = log_line(&mut rng);
        document.truncate(document.len() - 1);
        let pad = 1024usize.saturating_sub(document.len() + 14);
        let filler: String = (0..pad).map(|_| char::from(b'a' + rng.u8(..26))).collect();
        document.push_str(&format!(",\"note\":\"{filler}\"}}"));
        document.into_bytes()
    });
    kind("json_1k", &datas, 1)
}

/// The same 1 KiB JSON batch sent without compression: the difference to `json_1k` is gzip's share.
fn json_1k_uncompressed() -> Kind {
    Kind { name: "json_1k_uncompressed", env: &[("ES_COMPRESSION", "none")], ..json_1k() }
}

/// KPL aggregates of 20 user records (log lines as JSON, about 280 bytes each), up to the payload limit.
fn kpl_aggregates() -> Kind {
    let mut rng = fastrand::Rng::with_seed(21);
    let datas = up_to_the_limit(|_| {
        let lines: Vec<(String, String)> = (0..20).map(|i| (format!("pk-{i}"), log_line(&mut rng))).collect();
        let user_records: Vec<(&str, &[u8])> = lines.iter().map(|(k, l)| (k.as_str(), l.as_bytes())).collect();
        testkit::kpl::aggregate(&user_records)
    });
    kind("kpl_aggregates", &datas, 20)
}

/// Plain text lines (about 200 bytes), each a `{"message": …}` document.
fn plain_text() -> Kind {
    let mut rng = fastrand::Rng::with_seed(5);
    let datas = up_to_the_limit(|_| {
        format!(
            "2026-11-23T10:{:02}:{:02}.{:03}Z INFO checkout-{} GET /api/orders/{} 200 {}ms user=u{} agent=okhttp/4.12.0",
            rng.u8(..60),
            rng.u8(..60),
            rng.u16(..1000),
            rng.u8(..8),
            rng.u32(..100_000),
            rng.u32(1..2_000),
            rng.u32(..5_000)
        )
        .into_bytes()
    });
    kind("plain_text", &datas, 1)
}

/// The function process; killed when dropped.
struct Function(Child);

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Function {
    fn start(binary: &str, api: &LambdaApiDouble, es_url: &str, env: &[(&str, &str)]) -> Function {
        let log = std::env::var("BENCH_LOG").ok();
        let child = Command::new(binary)
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "kinesis-es-indexer")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("ES_URL", es_url)
            .env("RUST_LOG", log.as_deref().unwrap_or("warn"))
            .envs(env.iter().copied())
            .stdout(if log.is_some() { Stdio::inherit() } else { Stdio::null() })
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the function binary starts");
        Function(child)
    }

    /// CPU time of every thread of the process so far (nanoseconds from /proc/<pid>/task/*/schedstat).
    fn cpu(&self) -> Duration {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.0.id())).expect("/proc/<pid>/task");
        let nanos: u64 = tasks
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
            .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        Duration::from_nanos(nanos)
    }

    /// The most resident memory the process has used (VmHWM), in bytes.
    fn peak_rss(&self) -> usize {
        testkit::peak_rss(self.0.id())
    }
}

struct Figures {
    cpu_per_record: Duration,
    cpu_per_document: Duration,
    wall: Duration,
    peak_rss: usize,
    /// The peak RSS at the end of the cold start, before any batch: what the process needs to exist.
    ready_rss: usize,
    requests: usize,
    bytes_sent: usize,
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// Runs `binary` on `kind`'s batch `runs` times after a warm-up, in a fresh process.
async fn measure(binary: &str, kind: &Kind, runs: usize, indexer: bool) -> Figures {
    let es = EsDouble::start().await;
    es.set_keep_sources(false);
    let api = LambdaApiDouble::start().await;
    let function = Function::start(binary, &api, &es.url(), kind.env);
    first_poll(&api).await;
    let ready_rss = function.peak_rss();
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    for run in 0..=runs {
        let before = function.cpu();
        let started = Instant::now();
        api.invoke(&kind.event.replace("{run}", &run.to_string()), Duration::from_secs(120));
        let answers = api.answers(run + 1, Duration::from_secs(120)).await;
        let elapsed = started.elapsed();
        match answers.last() {
            Some(Answer::Response { body, .. }) if body["batchItemFailures"].as_array().is_some_and(Vec::is_empty) => {}
            other => panic!("{}: run {run} answered {other:?}", kind.name),
        }
        if run > 0 {
            cpu.push(function.cpu() - before);
            wall.push(elapsed);
        }
    }
    if indexer {
        assert_eq!(es.count(), kind.documents * (runs + 1), "{}: every document indexed", kind.name);
    }
    let requests = es.requests();
    let mean_cpu = cpu.iter().sum::<Duration>() / cpu.len() as u32;
    Figures {
        cpu_per_record: mean_cpu / kind.records as u32,
        cpu_per_document: mean_cpu / kind.documents as u32,
        wall: median(wall),
        peak_rss: function.peak_rss(),
        ready_rss,
        requests: requests.len() / (runs + 1),
        bytes_sent: requests.iter().map(|r| r.wire_bytes).sum::<usize>() / (runs + 1),
    }
}

/// How long `binary` takes from exec to its first poll of the Runtime API, `runs` times, each a fresh process.
async fn cold_starts(binary: &str, runs: usize) -> Vec<Duration> {
    let es = EsDouble::start().await;
    let mut starts = Vec::new();
    for _ in 0..runs {
        let api = LambdaApiDouble::start().await;
        let spawned = Instant::now();
        let _function = Function::start(binary, &api, &es.url(), &[]);
        starts.push(first_poll(&api).await.duration_since(spawned));
    }
    starts
}

/// When the function first asked the Runtime API for an invocation: the end of its cold start.
async fn first_poll(api: &LambdaApiDouble) -> Instant {
    let waiting = Instant::now();
    loop {
        match api.first_poll() {
            Some(polled) => return polled,
            None if waiting.elapsed() > Duration::from_secs(30) => panic!("the function did not poll within 30 s"),
            None => tokio::time::sleep(Duration::from_micros(200)).await,
        }
    }
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    let selected = std::env::var("BENCH_KINDS").ok();
    let wanted = |name: &str| selected.as_deref().is_none_or(|s| s.split(',').any(|k| k.trim() == name));
    let kinds: Vec<fn() -> Kind> = vec![
        json_1k,
        json_1k_uncompressed,
        cloudwatch_logs,
        cloudwatch_logs_strings,
        cloudwatch_logs_all_features,
        kpl_aggregates,
        plain_text,
    ];
    let starts = cold_starts(env!("CARGO_BIN_EXE_bootstrap"), runs).await;
    println!(
        "cold start (exec to the first poll of the Runtime API): median {:.1} ms of {runs} starts ({:.1}–{:.1} ms)\n",
        median(starts.clone()).as_secs_f64() * 1e3,
        starts.iter().min().expect("a start").as_secs_f64() * 1e3,
        starts.iter().max().expect("a start").as_secs_f64() * 1e3,
    );
    println!(
        "{:<22} {:>6} {:>6} {:>7} | {:>8} {:>8} {:>7} {:>7} {:>8} {:>8} {:>5} {:>7} | {:>8} {:>7}",
        "batch",
        "recs",
        "docs",
        "payload",
        "cpu/rec",
        "cpu/doc",
        "× floor",
        "wall",
        "peak RSS",
        "ready RSS",
        "reqs",
        "sent",
        "floor/rec",
        "floor RSS",
    );
    for make in kinds {
        let kind = make();
        if !wanted(kind.name) {
            continue;
        }
        let indexer = measure(env!("CARGO_BIN_EXE_bootstrap"), &kind, runs, true).await;
        let floor = measure(env!("CARGO_BIN_EXE_empty_handler"), &kind, runs, false).await;
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let mb = |bytes: usize| bytes as f64 / 1_048_576.0;
        println!(
            "{:<22} {:>6} {:>6} {:>5.2}MB | {:>6.2}µs {:>6.2}µs {:>7.2} {:>5.0}ms {:>6.1}MB {:>7.1}MB {:>5} {:>5.2}MB | {:>6.2}µs {:>5.1}MB",
            kind.name,
            kind.records,
            kind.documents,
            kind.event.len() as f64 / 1e6,
            us(indexer.cpu_per_record),
            us(indexer.cpu_per_document),
            us(indexer.cpu_per_record) / us(floor.cpu_per_record).max(f64::MIN_POSITIVE),
            indexer.wall.as_secs_f64() * 1e3,
            mb(indexer.peak_rss),
            mb(indexer.ready_rss),
            indexer.requests,
            indexer.bytes_sent as f64 / 1e6,
            us(floor.cpu_per_record),
            mb(floor.peak_rss),
        );
    }
    println!(
        "\ncpu: mean process CPU (all threads) per invocation over {runs} runs after a warm-up; wall: median; ready RSS: \
         peak RSS at the end of the cold start; floor: an empty lambda_runtime + aws_lambda_events handler on the same batch"
    );
}
