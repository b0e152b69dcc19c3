//! `make replay` end to end (FAULTS 25): Lambda's on-failure records in moto's S3 (and records in moto's Kinesis),
//! read by the `replay` binary and run through the function's handler against the Elasticsearch double.
//! Everything replayable is indexed exactly once, however often it is replayed; what cannot be replayed is named
//! with its reason and kept; an outage stops the replay after one batch instead of hammering the cluster.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use testkit::EsDouble;

use crate::support::{python_has, stream_tag};

/// The moto harness process (tests/pipeline/replay_moto.py): one replay per line written to it.
struct Moto {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stream_records: Vec<Value>,
}

impl Moto {
    fn start(es_url: &str) -> Moto {
        Moto::start_with(es_url, &[])
    }

    /// `extra`: the harness's own flags (`--firehose-backup`).
    fn start_with(es_url: &str, extra: &[&str]) -> Moto {
        Moto::spawn(&[("ES_URL", es_url), ("ES_INDEX", "logs-%Y.%m.%d")], extra)
    }

    /// For the remote mode: the binary reaches Lambda's `Invoke` at `invoke_url` and has no cluster configured
    /// (no `ES_URL`), so nothing it replays can be written but through the function.
    fn start_remote(invoke_url: &str) -> Moto {
        Moto::spawn(&[("AWS_ENDPOINT_URL_LAMBDA", invoke_url)], &["--firehose-backup"])
    }

    fn spawn(env: &[(&str, &str)], extra: &[&str]) -> Moto {
        let mut child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pipeline/replay_moto.py"))
            .arg(env!("CARGO_BIN_EXE_replay"))
            .args(extra)
            .env_remove("ES_URL")
            .envs(env.iter().copied())
            .env_remove("FIREHOSE_STREAM_NAME")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the moto harness");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).expect("the harness starts");
        let ready: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("harness said {first:?}: {e}"));
        Moto { child, stdin, stdout, stream_records: ready["stream_records"].as_array().unwrap().clone() }
    }

    /// Runs `make replay`'s binary once with `extra` arguments: its exit status, report and the objects left.
    fn replay(&mut self, extra: &[&str]) -> (i32, String, BTreeSet<String>) {
        writeln!(self.stdin, "{}", serde_json::to_string(extra).unwrap()).unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("the harness answers");
        let result: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("harness said {line:?}: {e}"));
        let keys = result["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
        let report = result["stdout"].as_str().unwrap().to_owned();
        assert!(!report.is_empty(), "no report; stderr: {}", result["stderr"]);
        (result["exit"].as_i64().unwrap() as i32, report, keys)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fixture of tests/fixtures/, read as JSON.
fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn fixtures() -> Value {
    fixture("lambda_on_failure_s3.json")
}

/// The `_id`s the fixtures' replayable batches must produce: one per JSON line of each record's data.
fn fixture_ids(fixtures: &Value, tag: &str) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for object in fixtures["objects"].as_array().unwrap().iter().filter(|o| o["expect"] == "replayed") {
        let payload = &object["body"]["payload"];
        let event: Value = match payload.as_str() {
            Some(text) => serde_json::from_str(text).unwrap(),
            None => payload.clone(),
        };
        for record in event["Records"].as_array().unwrap() {
            let (shard, sequence) = record["eventID"].as_str().unwrap().split_once(':').unwrap();
            let data = base64::engine::general_purpose::STANDARD.decode(record["kinesis"]["data"].as_str().unwrap());
            let data = data.unwrap();
            let documents = if data.starts_with(&[0x1f, 0x8b]) {
                1
            } else {
                data.split(|&b| b == b'\n').filter(|line| !line.is_empty()).count()
            };
            ids.extend((0..documents).map(|position| format!("{tag}:{shard}:{sequence}:{position}")));
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn s25_replay_brings_back_lambdas_failed_batches_once_and_names_what_it_cannot() {
    if !python_has(&["moto.server", "boto3", "flask_cors"]) {
        return;
    }
    let es = EsDouble::start().await;
    let url = es.url();
    let fixtures = fixtures();
    let tag = stream_tag(fixtures["stream_arn"].as_str().unwrap());
    let mut expected = fixture_ids(&fixtures, &tag);
    let (mut moto, expected) = tokio::task::spawn_blocking(move || {
        let moto = Moto::start(&url);
        for record in &moto.stream_records {
            expected.insert(format!("{tag}:{}:{}:0", record["shard_id"].as_str().unwrap(), record["sequence_number"]));
        }
        (moto, expected)
    })
    .await
    .unwrap();
    let expected: BTreeSet<String> = expected.into_iter().map(|id| id.replace('"', "")).collect();
    let stream_key = moto.stream_records[0]["key"].as_str().unwrap().to_owned();
    let objects = fixtures["objects"].as_array().unwrap().clone();
    let replayable: BTreeSet<String> = objects
        .iter()
        .filter(|o| o["expect"] == "replayed")
        .map(|o| o["key"].as_str().unwrap().to_owned())
        .chain([stream_key.clone()])
        .collect();
    let es_ids = |es: &EsDouble| -> Vec<String> { es.documents().into_iter().map(|(_, id, _)| id).collect() };

    // A dry run reads and checks every object and sends nothing.
    let (exit, report, _) = tokio::task::block_in_place(|| moto.replay(&["--dry-run"]));
    assert_eq!((exit, report.lines().filter(|l| l.starts_with("would replay ")).count()), (1, replayable.len()));
    assert_eq!(es.requests().len(), 0, "{report}");

    // The cluster is there: every replayable batch is indexed, from its payload or from the stream.
    let (exit, report, keys) = tokio::task::block_in_place(|| moto.replay(&[]));
    assert_eq!(exit, 1, "objects that cannot be replayed make the exit status 1:\n{report}");
    for key in &replayable {
        let line = report.lines().find(|l| l.contains(key.as_str())).unwrap_or_else(|| panic!("{key}:\n{report}"));
        assert!(line.starts_with("replayed "), "{line}");
    }
    assert!(report.lines().any(|l| l.contains(&stream_key) && l.ends_with("(from the stream)")), "{report}");
    for object in objects.iter().filter(|o| o["expect"] == "cannot") {
        let key = object["key"].as_str().unwrap();
        let line = report.lines().find(|l| l.contains(key)).unwrap_or_else(|| panic!("{key}:\n{report}"));
        assert!(line.starts_with("CANNOT ") && line.contains(object["why"].as_str().unwrap()), "{line}");
    }
    let ids = es_ids(&es);
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected, "{report}");
    assert_eq!(ids.len(), expected.len(), "each document once");
    assert_eq!(keys.len(), objects.len() + 1, "nothing is deleted unless asked");

    // The cluster goes away: the first batch's records are named with their cause, the rest are not even tried.
    es.set_outage(Duration::from_secs(600));
    let (exit, report, _) = tokio::task::block_in_place(|| moto.replay(&["--batch-timeout-seconds", "5"]));
    assert_eq!(exit, 1, "{report}");
    let not_replayed = report.lines().filter(|l| l.trim_start().starts_with("not replayed ")).count();
    assert!(not_replayed >= 1, "{report}");
    assert!(report.lines().filter(|l| l.starts_with("PARTLY ")).count() == 1, "one batch tried:\n{report}");
    let not_tried = report.lines().filter(|l| l.starts_with("NOT REPLAYED ") && l.contains("earlier batch")).count();
    assert_eq!(not_tried, replayable.len() - 1, "{report}");
    assert!(es.requests_during_outage() <= 2, "{} requests to a cluster that is away", es.requests_during_outage());
    assert_eq!(es_ids(&es).len(), expected.len());

    // Back again, replayed twice: nothing written twice, and the replayed objects are deleted when asked.
    es.set_outage(Duration::ZERO);
    let (exit, report, keys) = tokio::task::block_in_place(|| moto.replay(&["--delete-replayed"]));
    assert_eq!(exit, 1, "{report}");
    assert!(report.contains("already_there"), "{report}");
    assert_eq!(es_ids(&es).len(), expected.len(), "a replay writes nothing twice:\n{report}");
    let cannot: BTreeSet<String> =
        objects.iter().filter(|o| o["expect"] == "cannot").map(|o| o["key"].as_str().unwrap().to_owned()).collect();
    assert_eq!(keys, cannot, "only what could not be replayed is kept");
}

fn firehose_fixtures() -> Value {
    fixture("firehose_backup_s3.json")
}

/// The fixture's backed-up lines with what the test expects of each: (object key, expect, `_index`, `_id`, source
/// without its target).
fn backed_up_documents(fixtures: &Value) -> Vec<(String, String, String, String, Value)> {
    let mut documents = Vec::new();
    for object in fixtures["objects"].as_array().unwrap() {
        for line in object["lines"].as_array().unwrap().iter().filter(|line| line.get("document").is_some()) {
            let mut source = line["document"].clone();
            let target = source.as_object_mut().unwrap().remove("es_target").unwrap();
            documents.push((
                object["key"].as_str().unwrap().to_owned(),
                line["expect"].as_str().unwrap().to_owned(),
                target["_index"].as_str().unwrap().to_owned(),
                target["_id"].as_str().unwrap().to_owned(),
                source,
            ));
        }
    }
    documents
}

#[tokio::test(flavor = "multi_thread")]
async fn s33_replay_brings_back_firehoses_backup_once_from_a_bucket_mixed_with_lambdas_records() {
    if !python_has(&["moto.server", "boto3", "flask_cors"]) {
        return;
    }
    let es = EsDouble::start().await;
    let url = es.url();
    let fixtures = firehose_fixtures();
    let backed_up = backed_up_documents(&fixtures);
    let objects: Vec<String> =
        fixtures["objects"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap().to_owned()).collect();
    let mut moto = tokio::task::spawn_blocking(move || Moto::start_with(&url, &["--firehose-backup"])).await.unwrap();
    let ids_sent = |es: &EsDouble| -> BTreeSet<String> { es.requests().into_iter().flat_map(|r| r.ids).collect() };

    // A dry run over the whole bucket reads Firehose's objects beside Lambda's and sends nothing.
    let (_, report, _) = tokio::task::block_in_place(|| moto.replay(&["--prefix", "", "--dry-run"]));
    for key in &objects {
        let line = report.lines().find(|l| l.contains(key.as_str())).unwrap_or_else(|| panic!("{key}:\n{report}"));
        assert!(line.starts_with("would replay ") && line.ends_with("(from Firehose's backup)"), "{line}");
    }
    assert!(report.lines().any(|l| l.starts_with("would replay ") && l.contains("aws/lambda/")), "{report}");
    assert_eq!(es.requests().len(), 0, "{report}");

    // The cluster is busy: the first backup object is tried, its documents kept, the later ones not tried.
    es.set_busy_spell(Duration::from_secs(600));
    let (exit, report, keys) =
        tokio::task::block_in_place(|| moto.replay(&["--prefix", "failed-documents/", "--delete-replayed"]));
    assert_eq!(exit, 1, "{report}");
    let tried = report.lines().filter(|l| l.starts_with("PARTLY ")).count();
    let not_tried = report.lines().filter(|l| l.starts_with("NOT REPLAYED ") && l.contains("earlier object")).count();
    assert_eq!((tried, not_tried), (1, objects.len() - 1), "{report}");
    assert!(es.requests_during_busy_spell() <= 2, "{} requests to a busy cluster", es.requests_during_busy_spell());
    assert!(objects.iter().all(|key| keys.contains(key)), "nothing deleted that was not replayed");
    assert_eq!(es.count(), 0);

    // The cluster takes them: each document written once at its target, as it was before it was parked; the one
    // that failed for its own reason is offered again, refused again and listed; an unreadable line is named and its object kept.
    es.set_busy_spell(Duration::ZERO);
    let (exit, report, keys) = tokio::task::block_in_place(|| moto.replay(&["--prefix", ""]));
    assert_eq!(exit, 1, "Lambda's fixtures hold objects that cannot be replayed:\n{report}");
    for (key, expect, index, id, source) in &backed_up {
        match expect.as_str() {
            "indexed" => {
                assert_eq!(es.version(index, id), Some(1), "{id} written once at {index}:\n{report}");
                let stored = es.documents().into_iter().find(|(i, d, _)| i == index && d == id).unwrap().2;
                assert_eq!(&stored, source, "{id}: the document as it was, without its target");
            }
            "refused again" => {
                assert!(ids_sent(&es).contains(id), "{id} is offered again: the cluster decides");
                assert_eq!(es.version(index, id), None);
                let listed = report.lines().find(|l| l.trim_start().starts_with("rejected line "));
                let listed = listed.unwrap_or_else(|| panic!("{key}:\n{report}"));
                assert!(listed.contains("document_parsing_exception"), "{listed}");
                assert!(listed.contains(r#""amount":"twelve""#), "the document is quoted: {listed}");
            }
            other => panic!("fixture expect {other:?}"),
        }
    }
    for object in fixtures["objects"].as_array().unwrap() {
        let key = object["key"].as_str().unwrap();
        let line = report.lines().find(|l| l.contains(key)).unwrap_or_else(|| panic!("{key}:\n{report}"));
        assert!(line.starts_with(object["report"].as_str().unwrap()), "{line}");
    }
    assert!(report.contains("not replayed line 2: not a Firehose backup line"), "{report}");
    assert!(report.lines().any(|l| l.starts_with("replayed ") && l.contains("aws/lambda/")), "{report}");
    assert_eq!(keys.len(), objects.len() + fixtures_len(), "nothing deleted unless asked");

    // Replayed again, deleting what was replayed in full: nothing written twice, and only what was not is kept.
    let written = es.documents().len();
    let (_, report, keys) = tokio::task::block_in_place(|| moto.replay(&["--prefix", "", "--delete-replayed"]));
    assert_eq!(es.documents().len(), written, "a second replay writes nothing:\n{report}");
    assert!(es.documents().iter().all(|(index, id, _)| es.version(index, id) == Some(1)), "{report}");
    assert!(report.contains("already_there"), "{report}");
    let partly: Vec<&String> = objects.iter().filter(|key| keys.contains(*key)).collect();
    assert_eq!(
        partly,
        vec![&objects[1], &objects[2]],
        "of Firehose's, the objects with a rejected document or an unreadable line are kept"
    );
}

/// How many objects the Lambda side of the harness puts in the bucket: the fixtures' and the payload-less one.
fn fixtures_len() -> usize {
    fixtures()["objects"].as_array().unwrap().len() + 1
}

#[tokio::test(flavor = "multi_thread")]
async fn s33_the_remote_mode_replays_both_kinds_through_the_deployed_function_alone() {
    if !python_has(&["moto.server", "boto3", "flask_cors"]) {
        return;
    }
    let es = EsDouble::start().await;
    let api = testkit::LambdaApiDouble::start().await;
    let _function = crate::binary::start_function(&api, &[("ES_URL", &es.url()), ("ES_INDEX", "logs-%Y.%m.%d")]);
    let lambda_fixtures = fixtures();
    let tag = stream_tag(lambda_fixtures["stream_arn"].as_str().unwrap());
    let mut lambda_ids = fixture_ids(&lambda_fixtures, &tag);
    let invoke_url = api.invoke_url();
    let (mut moto, lambda_ids) = tokio::task::spawn_blocking(move || {
        let moto = Moto::start_remote(&invoke_url);
        for record in &moto.stream_records {
            lambda_ids.insert(format!(
                "{tag}:{}:{}:0",
                record["shard_id"].as_str().unwrap(),
                record["sequence_number"]
            ));
        }
        (moto, lambda_ids)
    })
    .await
    .unwrap();
    let lambda_ids: BTreeSet<String> = lambda_ids.into_iter().map(|id| id.replace('"', "")).collect();
    let fixtures = firehose_fixtures();
    let backed_up = backed_up_documents(&fixtures);
    let remote = ["--remote", "--function", "kinesis-es-indexer", "--prefix", ""];

    // The cluster is busy: the first object the function is given keeps its documents, the later ones wait.
    es.set_busy_spell(Duration::from_secs(600));
    let (exit, report, _) = tokio::task::block_in_place(|| {
        moto.replay(&["--remote", "--function", "kinesis-es-indexer", "--prefix", "failed-documents/"])
    });
    assert_eq!(exit, 1, "{report}");
    let tried = report.lines().filter(|l| l.starts_with("PARTLY ")).count();
    let not_tried = report.lines().filter(|l| l.starts_with("NOT REPLAYED ") && l.contains("earlier object")).count();
    assert_eq!((tried, not_tried), (1, fixtures["objects"].as_array().unwrap().len() - 1), "{report}");
    // Lambda's batches: the function sends the first back (its partial batch response), the later ones wait.
    let (exit, report, _) =
        tokio::task::block_in_place(|| moto.replay(&["--remote", "--function", "kinesis-es-indexer"]));
    assert_eq!(exit, 1, "{report}");
    let tried = report.lines().filter(|l| l.starts_with("PARTLY ")).count();
    let not_tried = report.lines().filter(|l| l.starts_with("NOT REPLAYED ") && l.contains("earlier batch")).count();
    assert_eq!((tried, not_tried), (1, replayable_lambda_objects(&lambda_fixtures) - 1), "{report}");
    assert!(report.contains("the function sent it back to Kinesis"), "{report}");
    assert_eq!(es.count(), 0);

    // Both kinds through the function alone: Lambda's records at the ids the function gives them, Firehose's
    // documents at their targets, each once; the mapping error listed, never sent.
    es.set_busy_spell(Duration::ZERO);
    let (_, report, _) = tokio::task::block_in_place(|| moto.replay(&remote));
    let stored: BTreeSet<String> = es.documents().into_iter().map(|(_, id, _)| id).collect();
    assert!(lambda_ids.is_subset(&stored), "Lambda's records replayed through the function:\n{report}");
    for (_, expect, index, id, source) in &backed_up {
        if expect == "indexed" {
            assert_eq!(es.version(index, id), Some(1), "{id}:\n{report}");
            let document = es.documents().into_iter().find(|(i, d, _)| i == index && d == id).unwrap().2;
            assert_eq!(&document, source);
        } else {
            assert_eq!(es.version(index, id), None, "{id} was written:\n{report}");
        }
    }
    assert_eq!(stored.len(), lambda_ids.len() + backed_up.iter().filter(|d| d.1 == "indexed").count(), "{report}");
    assert!(report.contains("rejected line 2: 400 document_parsing_exception"), "{report}");
    assert!(report.lines().any(|l| l.starts_with("replayed ") && l.contains("aws/lambda/")), "{report}");

    // Again, deleting what was replayed in full: nothing written twice.
    let written = es.documents().len();
    let (_, report, keys) = tokio::task::block_in_place(|| {
        moto.replay(&["--remote", "--function", "kinesis-es-indexer", "--prefix", "", "--delete-replayed"])
    });
    assert_eq!(es.documents().len(), written, "{report}");
    assert!(es.documents().iter().all(|(index, id, _)| es.version(index, id) == Some(1)), "{report}");
    let objects: Vec<String> =
        fixtures["objects"].as_array().unwrap().iter().map(|o| o["key"].as_str().unwrap().to_owned()).collect();
    let kept: Vec<&String> = objects.iter().filter(|key| keys.contains(*key)).collect();
    assert_eq!(kept, vec![&objects[1], &objects[2]], "{report}");
}

/// The Lambda objects a replay can take: the fixtures' replayable ones and the payload-less one the harness adds.
fn replayable_lambda_objects(fixtures: &Value) -> usize {
    fixtures["objects"].as_array().unwrap().iter().filter(|o| o["expect"] == "replayed").count() + 1
}
