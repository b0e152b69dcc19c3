#!/usr/bin/env python3
"""`make replay`: brings back the Kinesis batches Lambda gave up on, and the documents Firehose could not deliver.

Lambda writes one object per discarded batch to the event source mapping's S3 on-failure destination (the
template's FailedBatchesBucket). The format is documented in "Retain discarded batch records for a Kinesis Data
Streams event source in Lambda", https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html:
the object key is `aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>`, and the object is
the invocation record (requestContext, responseContext, version, timestamp, KinesisBatchInfo with shardId,
startSequenceNumber, endSequenceNumber, approximateArrivalOfFirstRecord/LastRecord, batchSize, streamArn) plus, for
S3 destinations only, `payload`: the whole invocation event. The payload is read whether it is the event's JSON
text or the event itself; a record without one (an SQS or SNS record copied to S3) names its batch by shard and
sequence range, and the records are read back from the stream with GetShardIterator AT_SEQUENCE_NUMBER and
GetRecords while the stream still holds them.

Firehose's backup bucket holds what the retry tier could not index within its retry duration. The format is
documented in "Handle data delivery failures", https://docs.aws.amazon.com/firehose/latest/dev/retry.html (section
Amazon OpenSearch Service): objects under the backup prefix with `AmazonOpenSearchService-failed/` appended (gzip'd as
the template configures), one JSON object per line with `rawData` (the record Firehose received, base64: here the
document with its `es_target` first), `errorCode`, `errorMessage`, `esDocumentId`, `esIndexName`, … An object is
taken as Firehose's when its lines carry `rawData`, wherever it is, so one bucket may hold both kinds.

Each batch, and each backup object's documents, is handed to the `replay` binary (src/bin/replay.rs), which runs it through the same handler against the
cluster and Firehose the environment configures (`--function NAME` copies the deployed function's environment).
The `_id` of every document is derived from the record's stream, shard and sequence number, so replaying a batch
twice writes nothing twice. The report says, per object, what was replayed and what could not be, and why; the
exit status is 0 only when everything was replayed.

    python3 scripts/replay.py --binary target/release/replay --bucket BUCKET [--prefix aws/lambda/] \\
        [--function NAME] [--batch-timeout-seconds 300] [--delete-replayed] [--dry-run]
    python3 scripts/replay.py --remote --function NAME --bucket BUCKET [--prefix …] [--delete-replayed] [--dry-run]

With --remote, nothing runs on the operator's machine but this script: each batch goes to the deployed function
with Lambda Invoke as its event (same VPC, role and settings as in production), and its partial batch response is
the batch's report; Firehose's documents go to the same function in a replay event, which writes them as the local
mode does and answers with the per-document report. Through the function, not back through the delivery stream:
Firehose would accept them and report nothing of what the cluster did with them.
"""
import argparse
import base64
import json
import os
import subprocess
import sys

DOCS = "https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html"
FIREHOSE_DOCS = "https://docs.aws.amazon.com/firehose/latest/dev/retry.html"
GZIP_MAGIC = b"\x1f\x8b"
BATCH_INFO_FIELDS = ("shardId", "startSequenceNumber", "endSequenceNumber", "batchSize", "streamArn")


class CannotReplay(Exception):
    """Why an object's batch cannot be run again (the object is kept)."""


def ensure_boto3():
    try:
        import boto3  # noqa: F401
    except ImportError:
        print("Installing boto3 with pip (once)…", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "boto3"], check=True)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", help="the replay binary (cargo build --release --bin replay); not with --remote")
    parser.add_argument(
        "--remote",
        action="store_true",
        help="replay through the deployed function (--function): Lambda Invoke, from inside its VPC and role",
    )
    parser.add_argument("--bucket", default=os.environ.get("REPLAY_BUCKET"), help="the on-failure S3 bucket")
    parser.add_argument("--prefix", default="aws/lambda/", help="key prefix to replay (default aws/lambda/)")
    parser.add_argument("--function", help="copy this deployed function's environment (explicit variables win)")
    parser.add_argument("--batch-timeout-seconds", type=int, default=300, help="time allowed per batch (300)")
    parser.add_argument("--delete-replayed", action="store_true", help="delete each object fully replayed")
    parser.add_argument("--dry-run", action="store_true", help="read and check the objects; replay nothing")
    args = parser.parse_args(argv)
    if not args.bucket:
        parser.error("--bucket (or REPLAY_BUCKET) is required: the stack's FailedBatchesBucket output")
    if args.remote and not args.function:
        parser.error("--remote needs --function: the deployed function that replays")
    if not args.remote and not args.binary:
        parser.error("--binary is required unless --remote")
    return args


def region_of(arn):
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "kinesis":
        raise CannotReplay(f"streamArn {arn!r} is not a Kinesis stream ARN")
    return parts[3]


def stream_name_of(arn):
    resource = arn.split(":", 5)[5]
    if not resource.startswith("stream/"):
        raise CannotReplay(f"streamArn {arn!r} does not name a stream")
    return resource[len("stream/"):]


def batch_info_of(record):
    info = record.get("KinesisBatchInfo") if isinstance(record, dict) else None
    if not isinstance(info, dict):
        raise CannotReplay(f"not a Lambda on-failure record for Kinesis (no KinesisBatchInfo; see {DOCS})")
    missing = [field for field in BATCH_INFO_FIELDS if info.get(field) in (None, "")]
    if missing:
        raise CannotReplay(f"KinesisBatchInfo lacks {', '.join(missing)}")
    try:
        int(info["startSequenceNumber"]), int(info["endSequenceNumber"]), int(info["batchSize"])
    except (TypeError, ValueError):
        raise CannotReplay("KinesisBatchInfo's sequence numbers and batchSize must be integers") from None
    return info


def event_from_payload(payload):
    """The invocation event a failure record carries: its JSON text, or the event itself."""
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError as e:
            raise CannotReplay(f"payload is not the event's JSON: {e}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("Records"), list):
        raise CannotReplay("payload is not a Kinesis event (no Records list)")
    return payload


def lambda_record(info, region, got):
    """One GetRecords record, shaped as Lambda delivers it to the function."""
    arrival = got.get("ApproximateArrivalTimestamp")
    kinesis = {
        "kinesisSchemaVersion": "1.0",
        "partitionKey": got["PartitionKey"],
        "sequenceNumber": got["SequenceNumber"],
        "data": base64.b64encode(got["Data"]).decode("ascii"),
    }
    if arrival is not None:
        kinesis["approximateArrivalTimestamp"] = arrival.timestamp()
    return {
        "kinesis": kinesis,
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{info['shardId']}:{got['SequenceNumber']}",
        "eventName": "aws:kinesis:record",
        "awsRegion": region,
        "eventSourceARN": info["streamArn"],
    }


def fetch_from_stream(info, session, max_empty_polls=20):
    """The batch's records read back from the stream; raises when the stream no longer holds all of them."""
    from botocore.exceptions import BotoCoreError, ClientError

    region = region_of(info["streamArn"])
    kinesis = session.client("kinesis", region_name=region)
    start, end, wanted = int(info["startSequenceNumber"]), int(info["endSequenceNumber"]), int(info["batchSize"])
    records = []
    try:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream_name_of(info["streamArn"]),
            ShardId=info["shardId"],
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=info["startSequenceNumber"],
        )["ShardIterator"]
        empty_polls = 0
        while iterator and len(records) < wanted and empty_polls < max_empty_polls:
            answer = kinesis.get_records(ShardIterator=iterator, Limit=min(10_000, wanted - len(records)))
            got = [r for r in answer["Records"] if int(r["SequenceNumber"]) <= end]
            records.extend(lambda_record(info, region, r) for r in got)
            if len(got) < len(answer["Records"]):
                break
            empty_polls = 0 if answer["Records"] else empty_polls + 1
            if not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
                break
            iterator = answer.get("NextShardIterator")
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise CannotReplay(f"the stream has no {info['shardId']} ({e}): deleted, resharded away or another account") from None
        raise CannotReplay(f"the stream could not be read ({e})") from None
    except BotoCoreError as e:
        raise CannotReplay(f"the stream could not be read ({e})") from None
    if not records or int(records[0]["kinesis"]["sequenceNumber"]) != start:
        raise CannotReplay(
            f"the stream no longer holds the batch from sequence {start} on {info['shardId']} "
            "(past the stream's retention, or a different stream)"
        )
    if len(records) < wanted:
        raise CannotReplay(f"the stream holds {len(records)} of the batch's {wanted} records")
    return records


def read_batch(body, session):
    """(event, how it was obtained) for one on-failure object's bytes."""
    try:
        record = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CannotReplay(f"not JSON: {e}") from None
    info = batch_info_of(record)
    if record.get("payload") is not None:
        event = event_from_payload(record["payload"])
        if len(event["Records"]) != int(info["batchSize"]):
            raise CannotReplay(
                f"payload holds {len(event['Records'])} records but KinesisBatchInfo says {info['batchSize']}"
            )
        return event, "payload"
    return {"Records": fetch_from_stream(info, session)}, "stream"


def backup_lines(body):
    """The lines of a Firehose backup object (gunzipped when gzip'd), or None when the object is not one."""
    if body[:2] == GZIP_MAGIC:
        import gzip

        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as e:
            raise CannotReplay(f"gzip'd but cannot be inflated: {e}") from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), None)
    try:
        first_line = json.loads(first) if first is not None else None
    except json.JSONDecodeError:
        return None
    return lines if isinstance(first_line, dict) and "rawData" in first_line else None


def read_backup(lines):
    """(documents for the replay binary, [(line number, why it cannot be replayed)]) of a Firehose backup object."""
    documents, cannot = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            failed = json.loads(line)
            if not isinstance(failed, dict) or not isinstance(failed.get("rawData"), str):
                raise ValueError(f"no rawData (see {FIREHOSE_DOCS})")
            raw = base64.b64decode(failed["rawData"], validate=True).decode("utf-8").rstrip("\n")
        except (ValueError, UnicodeDecodeError) as e:
            cannot.append((number, f"not a Firehose backup line: {e}"))
            continue
        documents.append(
            {
                "line": number,
                "raw": raw,
                "error_code": str(failed.get("errorCode", "")),
                "error_message": str(failed.get("errorMessage", "")),
                "es_document_id": failed.get("esDocumentId"),
            }
        )
    return documents, cannot


def function_environment(session, name):
    config = session.client("lambda").get_function_configuration(FunctionName=name)
    return config.get("Environment", {}).get("Variables", {})


def list_keys(s3, bucket, prefix):
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"]


def run_replay(binary, lines, env, timeout):
    """Runs the batches through the replay binary; its result per source (stderr carries the handler's logs)."""
    command = [binary, "--batch-timeout-seconds", str(timeout)]
    text = "".join(json.dumps(line) + "\n" for line in lines)
    done = subprocess.run(command, input=text, capture_output=True, text=True, env=env)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"replay: the replay binary failed (exit {done.returncode}); see its message above")
    return {result["source"]: result for result in map(json.loads, done.stdout.splitlines())}


class Item:
    """One object to replay: its key, where its batch or documents came from, how many, and its unreadable lines."""

    def __init__(self, key, origin, count, unit, bad_lines):
        self.key, self.origin, self.count, self.unit, self.bad_lines = key, origin, count, unit, bad_lines


# Lambda's synchronous Invoke takes and answers at most 6 MB: a backup object's lines go in invocations of at most
# this many bytes and lines (a report names each line not replayed in about 250 bytes).
INVOKE_PAYLOAD_BYTES = 5 * 1024 * 1024
INVOKE_LINES = 10_000


def invoke(client, function, payload):
    """(answer, request id) of a synchronous invocation; raises CannotReplay when the function failed."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = client.invoke(FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(payload))
    except (BotoCoreError, ClientError) as e:
        raise CannotReplay(f"the function {function} could not be invoked: {e}") from None
    request_id = response.get("ResponseMetadata", {}).get("RequestId", "?")
    answer = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        raise CannotReplay(f"the function failed (request {request_id}): {answer}")
    return answer, request_id


def remote_batch_result(source, event, answer, request_id):
    """A Lambda batch's result from the function's partial batch response: every record from the lowest one it
    sent back on is not replayed (Lambda's checkpoint), the cause in the function's log lines for the request."""
    records = event["Records"]
    if not isinstance(answer, dict) or not isinstance(answer.get("batchItemFailures"), list):
        raise CannotReplay(f"the function's answer (request {request_id}) is not a partial batch response: {answer}")
    failed = {f.get("itemIdentifier") for f in answer["batchItemFailures"]}
    first = next((i for i, r in enumerate(records) if r["kinesis"]["sequenceNumber"] in failed), len(records))
    if failed and first == len(records):
        first = 0  # a failure naming no record of the batch: Lambda retries it all
    not_replayed = [
        {
            "shard_id": r["eventID"].split(":", 1)[0],
            "sequence_number": r["kinesis"]["sequenceNumber"],
            "cause": "sent_back",
            "reason": f"the function sent it back to Kinesis; its log lines for request {request_id} say why",
        }
        for r in records[first:]
    ]
    result = {
        "source": source,
        "records": len(records),
        "outcomes": {"settled": first, "sent_back": len(records) - first},
        "not_replayed": not_replayed,
    }
    if not_replayed:
        result["stop"] = f"an earlier batch was sent back by the function (request {request_id}): see its logs"
    return result


def remote_backup_result(client, function, source, documents):
    """A backup object's result from the function's replay reports, its lines sent in invocations under 6 MB."""
    chunks, chunk, size = [], [], 0
    for document in documents:
        length = len(json.dumps(document))
        if chunk and (size + length > INVOKE_PAYLOAD_BYTES or len(chunk) == INVOKE_LINES):
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(document)
        size += length
    chunks.append(chunk)
    merged = {"source": source, "documents": 0, "outcomes": {}, "not_replayed": [], "rejected": [], "stop": None}
    for chunk in chunks:
        if merged["stop"]:
            merged["not_replayed"] += [
                {"where": f"line {d['line']}", "cause": "not_tried", "reason": merged["stop"]} for d in chunk
            ]
            merged["documents"] += len(chunk)
            continue
        answer, request_id = invoke(
            client, function, {"kinesis_es_indexer_replay": {"source": source, "backup": chunk}}
        )
        if not isinstance(answer, dict) or not {"documents", "outcomes", "not_replayed"} <= answer.keys():
            raise CannotReplay(
                f"the function's answer (request {request_id}) is not a replay report: it is a version that cannot "
                "replay Firehose's backup; deploy this one, or replay locally"
            )
        merged["documents"] += answer["documents"]
        for name, count in answer["outcomes"].items():
            merged["outcomes"][name] = merged["outcomes"].get(name, 0) + count
        merged["not_replayed"] += answer["not_replayed"]
        merged["rejected"] += answer["rejected"]
        merged["stop"] = answer.get("stop")
    return merged


def run_remote(client, function, lines):
    """Runs the batches and backup objects through the deployed function, one invocation each (more for a large
    object); after a batch or object the cluster could not take, the rest are not tried."""
    results, stopped_by = {}, None
    for line in lines:
        source = line["source"]
        if stopped_by:
            results[source] = {"source": source, "not_tried": stopped_by}
            continue
        try:
            if "event" in line:
                answer, request_id = invoke(client, function, line["event"])
                result = remote_batch_result(source, line["event"], answer, request_id)
            else:
                result = remote_backup_result(client, function, source, line["backup"])
        except CannotReplay as why:
            result = {"source": source, "error": str(why)}
            stopped_by = f"an earlier invocation failed: {why}"
        stopped_by = stopped_by or result.get("stop")
        results[source] = result
    return results


def main(argv):
    args = parse_args(argv)
    ensure_boto3()
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.session.Session()
    s3 = session.client("s3")
    env = dict(os.environ)
    if args.function and not args.remote:
        env = {**function_environment(session, args.function), **env}

    cannot, lines, sources = {}, [], {}
    try:
        keys = list(list_keys(s3, args.bucket, args.prefix))
    except (BotoCoreError, ClientError) as e:
        raise SystemExit(f"replay: cannot list s3://{args.bucket}/{args.prefix}: {e}") from None
    for key in keys:
        source = f"s3://{args.bucket}/{key}"
        try:
            body = s3.get_object(Bucket=args.bucket, Key=key)["Body"].read()
            backup = backup_lines(body)
            if backup is not None:
                documents, bad_lines = read_backup(backup)
                if not documents:
                    raise CannotReplay("; ".join(f"line {n}: {why}" for n, why in bad_lines) or "no documents")
                sources[source] = Item(key, "Firehose's backup", len(documents), "documents", bad_lines)
                lines.append({"source": source, "backup": documents})
                continue
            event, how = read_batch(body, session)
        except (BotoCoreError, ClientError) as e:
            cannot[source] = f"could not be read: {e}"
            continue
        except CannotReplay as why:
            cannot[source] = str(why)
            continue
        sources[source] = Item(key, f"the {how}", len(event["Records"]), "records", [])
        lines.append({"source": source, "event": event})

    if args.dry_run or not lines:
        results = {}
    elif args.remote:
        from botocore.config import Config

        # An invocation may run up to Lambda's 15 minutes; botocore's 60 s read timeout and retries would invoke it
        # again while it still runs, loading the cluster twice and reporting written documents as not replayed.
        patient = Config(read_timeout=910, connect_timeout=10, retries={"total_max_attempts": 1})
        results = run_remote(session.client("lambda", config=patient), args.function, lines)
    else:
        results = run_replay(args.binary, lines, env, args.batch_timeout_seconds)
    replayed = report(sources, results, cannot, args.dry_run)
    if args.delete_replayed and not args.dry_run:
        for source in replayed:
            s3.delete_object(Bucket=args.bucket, Key=sources[source].key)
        print(f"Deleted the {len(replayed)} objects replayed in full.")
    return 0 if len(replayed) == len(keys) or (args.dry_run and not cannot) else 1


def report(sources, results, cannot, dry_run):
    """Prints one line per object and the totals; returns the sources replayed in full."""
    replayed, done, not_done = [], {"records": 0, "documents": 0}, {"records": 0, "documents": 0}
    rejected = 0
    for source, item in sources.items():
        if dry_run:
            print(f"would replay  {source}: {item.count} {item.unit} (from {item.origin})")
            continue
        result = results.get(source)
        if result is None or "error" in result or "not_tried" in result:
            why = "no result" if result is None else result.get("error") or result.get("not_tried")
            print(f"NOT REPLAYED  {source}: {item.count} {item.unit}: {why}")
            not_done[item.unit] += item.count + len(item.bad_lines)
            continue
        outcomes = ", ".join(f"{n} {name}" for name, n in result["outcomes"].items() if n)
        if item.unit == "records":
            summary = f"{result['records']} records ({outcomes})"
            if "documents" in result:
                summary += f", {result['documents']} documents"
        else:
            summary = f"{result['documents']} documents ({outcomes})"
        not_replayed = result["not_replayed"]
        not_done[item.unit] += len(not_replayed) + len(item.bad_lines)
        rejected += len(result.get("rejected", []))
        done[item.unit] += result[item.unit] - len(not_replayed) - len(result.get("rejected", []))
        rejected_here = result.get("rejected", [])
        if not_replayed or item.bad_lines or rejected_here:
            print(f"PARTLY        {source}: {summary} (from {item.origin})")
            for entry in not_replayed:
                fix = f" Fix: {entry['fix']}" if entry.get("fix") else ""
                where = entry.get("where") or f"{entry['shard_id']}:{entry['sequence_number']}"
                print(f"    not replayed {where}: {entry['cause']}: {entry['reason']}.{fix}")
            for number, why in item.bad_lines:
                print(f"    not replayed line {number}: {why}")
        else:
            print(f"replayed      {source}: {summary} (from {item.origin})")
            replayed.append(source)
        for entry in rejected_here:
            print(
                f"    rejected {entry['where']}: {entry['reason']} (refused for its own fault: the object is kept for a "
                f"replay once the mapping or the document is fixed; the document begins {entry.get('excerpt', '')!r})"
            )
    for source, why in cannot.items():
        print(f"CANNOT        {source}: {why}")
    if not dry_run:
        print(
            f"\n{len(replayed)} of {len(sources) + len(cannot)} objects replayed in full; "
            f"{done['records']} records and {done['documents']} documents replayed, {not_done['records']} records "
            f"and {not_done['documents']} documents not; {rejected} documents refused for their own fault (listed "
            f"above, their objects kept); {len(cannot)} objects cannot be replayed. "
            "Objects not replayed in full are kept; run again once the cause is fixed (replaying twice writes "
            "nothing twice)."
        )
    return replayed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
