#!/usr/bin/env python3
"""The AWS side of tests/pipeline/replay.rs: moto's S3 and Kinesis holding Lambda's on-failure records.

Starts moto's server on 127.0.0.1 (a port chosen at run time), puts the objects of
tests/fixtures/lambda_on_failure_s3.json into a bucket, puts three records into a moto Kinesis stream and writes
a payload-less on-failure record naming them (as an SQS or SNS destination receives it). Then prints one JSON line
(`{"stream_records": [...]}`) and, for each line read from stdin (a JSON list of extra arguments), runs the
`replay` binary (BINARY) against that bucket with the environment it was given (ES_URL, …) and prints
`{"exit": …, "stdout": …, "keys": [objects left]}`. Stops moto at end of input.

With `--firehose-backup`, the same bucket also holds the objects of tests/fixtures/firehose_backup_s3.json, in
Firehose's backup format (gzip'd where the fixture says so), so that one bucket mixes both kinds.

    python3 tests/pipeline/replay_moto.py BINARY [--firehose-backup]
"""
import base64
import gzip
import json
import logging
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUCKET = "kinesis-es-indexer-failed-batches"
REGION = "eu-west-1"
ESM = "f6d4c3b2-1a09-4e8d-9c7b-5a4f3e2d1c0b"


def firehose_backup_body(item):
    """A backup object's bytes: one line per fixture line, in the format AWS documents (see the fixture's _about)."""
    lines = []
    for n, line in enumerate(item["lines"]):
        if "raw_line" in line:
            lines.append(line["raw_line"])
            continue
        raw = (json.dumps(line["document"], separators=(",", ":")) + "\n").encode()
        target = line["document"]["es_target"]
        lines.append(
            json.dumps(
                {
                    "attemptsMade": 4,
                    "arrivalTimestamp": 1763636400000 + n,
                    "errorCode": line["errorCode"],
                    "errorMessage": line["errorMessage"],
                    "attemptEndingTimestamp": 1763643600000 + n,
                    "rawData": base64.b64encode(raw).decode("ascii"),
                    "subsequenceNumber": 0,
                    "esDocumentId": target.get("_id"),
                    "esIndexName": target["_index"],
                    "esTypeName": "",
                }
            )
        )
    body = ("\n".join(lines) + "\n").encode()
    return gzip.compress(body) if item["gzip"] else body


def main(binary, with_firehose_backup):
    from moto.server import ThreadedMotoServer
    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
        )
        s3 = session.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"])
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        with open(os.path.join(ROOT, "tests", "fixtures", "lambda_on_failure_s3.json")) as f:
            fixtures = json.load(f)
        for item in fixtures["objects"]:
            body = item["body_text"] if "body_text" in item else json.dumps(item["body"])
            s3.put_object(Bucket=BUCKET, Key=item["key"], Body=body.encode())
        stream_records = put_stream_records(session, env["AWS_ENDPOINT_URL"], s3, fixtures["stream_arn"])
        if with_firehose_backup:
            with open(os.path.join(ROOT, "tests", "fixtures", "firehose_backup_s3.json")) as f:
                for item in json.load(f)["objects"]:
                    s3.put_object(Bucket=BUCKET, Key=item["key"], Body=firehose_backup_body(item))
        print(json.dumps({"stream_records": stream_records}), flush=True)

        for line in sys.stdin:
            extra = json.loads(line)
            done = subprocess.run(
                [binary, "--bucket", BUCKET] + extra, capture_output=True, text=True, env=env, cwd=ROOT
            )
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
            result = {"exit": done.returncode, "stdout": done.stdout, "stderr": done.stderr[-4000:], "keys": keys}
            print(json.dumps(result), flush=True)
    finally:
        server.stop()


def put_stream_records(session, endpoint, s3, stream_arn):
    """Three records in moto's Kinesis and a payload-less on-failure record naming them; their shard, sequence, data."""
    name = stream_arn.rsplit("/", 1)[1]
    kinesis = session.client("kinesis", endpoint_url=endpoint)
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.put_record(StreamName=name, Data=b'{"message":"before the batch"}', PartitionKey="p")
    put = []
    for i in range(3):
        data = json.dumps({"message": "from the stream", "n": i}).encode()
        answer = kinesis.put_record(StreamName=name, Data=data, PartitionKey=f"p{i}")
        put.append({"shard_id": answer["ShardId"], "sequence_number": answer["SequenceNumber"]})
    kinesis.put_record(StreamName=name, Data=b'{"message":"after the batch"}', PartitionKey="p")
    shard = put[0]["shard_id"]
    record = {
        "requestContext": {
            "requestId": "5f0e1d2c-3b4a-4958-8677-a6b5c4d3e2f1",
            "functionArn": f"arn:aws:lambda:{REGION}:123456789012:function:kinesis-es-indexer",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 4,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-11-20T11:00:00.000Z",
        "KinesisBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": put[0]["sequence_number"],
            "endSequenceNumber": put[-1]["sequence_number"],
            "approximateArrivalOfFirstRecord": "2026-11-20T10:59:58.000Z",
            "approximateArrivalOfLastRecord": "2026-11-20T10:59:58.100Z",
            "batchSize": len(put),
            "streamArn": stream_arn,
        },
    }
    key = f"aws/lambda/{ESM}/{shard}/2026/11/20/2026-11-20T11.00.00-2b3c4d5e-6f70-4819-a2b3-c4d5e6f70819"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(record).encode())
    return [{**p, "key": key} for p in put]


if __name__ == "__main__":
    main(sys.argv[1], "--firehose-backup" in sys.argv[2:])
