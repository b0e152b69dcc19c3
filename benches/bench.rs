//! `make bench`: the real `bootstrap` (release) under the Runtime API double, against the Elasticsearch double
//! answering at once, on generated batches; per batch kind: CPU time of the function process per record and per
//! document, wall time, peak RSS (VmHWM), requests and bytes sent. Not a timed test: it prints figures.
//!
//! `BENCH_RUNS` (default 5) invocations per kind after one warm-up; `BENCH_KINDS` (comma-separated names) selects
//! kinds. Each kind gets a fresh process, so its peak RSS is that kind's.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use testkit::{Answer, EsDouble, LambdaApiDouble};

/// One batch kind: a Lambda event (with `{run}` where each run's stream name goes, so every run writes new ids).
struct Kind {
    name: &'static str,
    event: String,
    records: usize,
    documents: usize,
}

/// Lambda's limit for a synchronous invocation's payload is 6 MB (6,291,456 bytes); stay just under it.
const PAYLOAD_LIMIT: usize = 6_000_000;

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

/// gzip'd CloudWatch Logs subscription envelopes of 100 log events each, up to Lambda's payload limit.
fn cloudwatch_logs() -> Kind {
    let mut rng = fastrand::Rng::with_seed(30);
    let mut datas = Vec::new();
    let mut payload = 0;
    let mut events = 0;
    loop {
        let log_events: Vec<serde_json::Value> = (0..100)
            .map(|i| {
                serde_json::json!({"id": format!("{}", 37_000_000_000_000_000_000_000_000_000_000_000_000u128 + (events + i) as u128), "timestamp": 1_795_400_000_000u64 + (events + i) as u64, "message": log_line(&mut rng)})
            })
            .collect();
        let envelope = serde_json::json!({
            "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "/aws/lambda/checkout",
            "logStream": "2026/11/23/[$LATEST]0123456789abcdef", "subscriptionFilters": ["to-kinesis"],
            "logEvents": log_events,
        });
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(envelope.to_string().as_bytes()).unwrap();
        let data = gz.finish().unwrap();
        let size = data.len() * 4 / 3 + 420;
        if payload + size > PAYLOAD_LIMIT {
            break;
        }
        payload += size;
        events += 100;
        datas.push(data);
    }
    Kind { name: "cloudwatch_logs_gzip", event: lambda_event(&datas), records: datas.len(), documents: events }
}

/// 1 KiB JSON documents, up to Lambda's payload limit.
fn json_1k() -> Kind {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut datas = Vec::new();
    let mut payload = 0;
    loop {
        let mut document = log_line(&mut rng);
        document.truncate(document.len() - 1);
        let pad = 1024usize.saturating_sub(document.len() + 14);
        let filler: String = (0..pad).map(|_| char::from(b'a' + rng.u8(..26))).collect();
        document.push_str(&format!(",\"note\":\"{filler}\"}}"));
        let size = document.len() * 4 / 3 + 420;
        if payload + size > PAYLOAD_LIMIT {
            break;
        }
        payload += size;
        datas.push(document.into_bytes());
    }
    let records = datas.len();
    Kind { name: "json_1k", event: lambda_event(&datas), records, documents: records }
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
    fn start(api: &LambdaApiDouble, es_url: &str) -> Function {
        let child = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "kinesis-es-indexer")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("ES_URL", es_url)
            .env("RUST_LOG", std::env::var("BENCH_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(if std::env::var_os("BENCH_LOG").is_some() { Stdio::inherit() } else { Stdio::null() })
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the bootstrap binary starts");
        Function(child)
    }

    /// (user + system CPU time, peak RSS in bytes) of the process so far, from /proc.
    fn usage(&self) -> (Duration, usize) {
        let pid = self.0.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
        let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
        let hwm_kb: usize = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM");
        (Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()), hwm_kb * 1024)
    }
}

fn clock_ticks_per_second() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().ok();
    out.and_then(|o| String::from_utf8(o.stdout).ok()).and_then(|s| s.trim().parse().ok()).unwrap_or(100.0)
}

struct Figures {
    cpu_per_record: Duration,
    cpu_per_document: Duration,
    wall: Duration,
    peak_rss: usize,
    requests: usize,
    bytes_sent: usize,
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

async fn measure(kind: &Kind, runs: usize) -> Figures {
    let es = EsDouble::start().await;
    let api = LambdaApiDouble::start().await;
    let function = Function::start(&api, &es.url());
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    for run in 0..=runs {
        let before = function.usage().0;
        let started = Instant::now();
        api.invoke(&kind.event.replace("{run}", &run.to_string()), Duration::from_secs(120));
        let answers = api.answers(run + 1, Duration::from_secs(120)).await;
        let elapsed = started.elapsed();
        match answers.last() {
            Some(Answer::Response { body, .. }) if body["batchItemFailures"].as_array().is_some_and(Vec::is_empty) => {}
            other => panic!("{}: run {run} answered {other:?}", kind.name),
        }
        if run > 0 {
            cpu.push(function.usage().0 - before);
            wall.push(elapsed);
        }
    }
    assert_eq!(es.count(), kind.documents * (runs + 1), "{}: every document indexed", kind.name);
    let requests = es.requests();
    let cpu = median(cpu);
    Figures {
        cpu_per_record: cpu / kind.records as u32,
        cpu_per_document: cpu / kind.documents as u32,
        wall: median(wall),
        peak_rss: function.usage().1,
        requests: requests.len() / (runs + 1),
        bytes_sent: requests.iter().map(|r| r.wire_bytes).sum::<usize>() / (runs + 1),
    }
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let selected = std::env::var("BENCH_KINDS").ok();
    let wanted = |name: &str| selected.as_deref().is_none_or(|s| s.split(',').any(|k| k.trim() == name));
    let kinds: Vec<fn() -> Kind> = vec![json_1k, cloudwatch_logs];
    println!(
        "{:<22} {:>7} {:>7} {:>8} {:>10} {:>10} {:>9} {:>9} {:>5} {:>9}",
        "batch", "records", "docs", "payload", "cpu/rec", "cpu/doc", "wall", "peak RSS", "reqs", "sent"
    );
    for make in kinds {
        let kind = make();
        if !wanted(kind.name) {
            continue;
        }
        let f = measure(&kind, runs).await;
        println!(
            "{:<22} {:>7} {:>7} {:>6.2}MB {:>8.2}µs {:>8.2}µs {:>7.0}ms {:>7.1}MB {:>5} {:>7.2}MB",
            kind.name,
            kind.records,
            kind.documents,
            kind.event.len() as f64 / 1e6,
            f.cpu_per_record.as_secs_f64() * 1e6,
            f.cpu_per_document.as_secs_f64() * 1e6,
            f.wall.as_secs_f64() * 1e3,
            f.peak_rss as f64 / 1_048_576.0,
            f.requests,
            f.bytes_sent as f64 / 1e6,
        );
    }
}
