#!/usr/bin/env python3
"""`make run`: the indexer end to end on a sample event, against local stand-ins.

Elasticsearch: the project's double (started by the runner) unless ES_URL is set.
Firehose: moto's server (`make run` installs it in .venv), with a delivery stream writing to moto's S3, unless
AWS_ENDPOINT_URL_FIREHOSE is set; the dead letter (DEAD_LETTER_BUCKET) in moto's S3 as well. After the run, prints
what Firehose delivered and what the dead letter keeps.

    python3 scripts/run_local.py [--release] [events/kinesis.json]
"""
import json
import logging
import os
import subprocess
import sys

STREAM = "kinesis-es-indexer-retry-later"
BUCKET = "kinesis-es-indexer-backup"
DEAD_LETTER_BUCKET = "kinesis-es-indexer-failed-batches"
REGION = "eu-west-1"


def ensure_moto():
    try:
        import moto.server  # noqa: F401
        import boto3  # noqa: F401
        import flask_cors  # noqa: F401
    except ImportError as missing:
        # Installing here would meet PEP 668 on an externally managed Python: the Makefile's .venv holds the tools.
        sys.exit(f"run_local: {missing.name} is missing: run `make run`, which installs deploy/requirements/run.txt "
                 "in the project's .venv")


def start_moto():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def create_stream(endpoint):
    import boto3

    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    for bucket in (BUCKET, DEAD_LETTER_BUCKET):
        session.client("s3", endpoint_url=endpoint).create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
    # CompressionFormat and BufferingHints are what a real stream reports; the Rust SDK needs them to describe it.
    session.client("firehose", endpoint_url=endpoint).create_delivery_stream(
        DeliveryStreamName=STREAM,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "CompressionFormat": "UNCOMPRESSED",
            "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60},
        },
    )
    return session


def show_delivered(session, endpoint):
    s3 = session.client("s3", endpoint_url=endpoint)
    objects = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    documents = []
    for obj in objects:
        body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read().decode()
        documents += [json.loads(line) for line in body.splitlines() if line.strip()]
    print(f"\nFirehose (moto) delivered {len(documents)} documents to s3://{BUCKET}:")
    for doc in documents:
        target = doc.get("es_target", {})
        print(f"  _index={target.get('_index')} _id={target.get('_id')}")


def show_dead_letter(session, endpoint):
    import base64

    s3 = session.client("s3", endpoint_url=endpoint)
    objects = s3.list_objects_v2(Bucket=DEAD_LETTER_BUCKET).get("Contents", [])
    print(f"\nThe dead letter (moto) keeps {len(objects)} objects in s3://{DEAD_LETTER_BUCKET}:")
    for obj in objects:
        print(f"  {obj['Key']}")
        body = s3.get_object(Bucket=DEAD_LETTER_BUCKET, Key=obj["Key"])["Body"].read().decode()
        for line in body.splitlines():
            kept = json.loads(line)
            error = json.loads(kept["errorMessage"])
            document = base64.b64decode(kept["rawData"]).decode().strip()
            print(f"    {kept['errorCode']} {error['type']}: {error['reason']}\n      {document}")


def main():
    args = sys.argv[1:]
    profile = ["--release"] if "--release" in args else []
    args = [a for a in args if a != "--release"]
    event = args[0] if args else "events/kinesis.json"
    # Built first, with cargo's progress shown: the first build takes a few minutes.
    print("Building the indexer's local runner (cargo build --example run_local; the first build takes a few minutes)…", flush=True)
    built = subprocess.run(["cargo", "build", *profile, "--example", "run_local"])
    if built.returncode != 0:
        sys.exit(built.returncode)
    env = dict(os.environ)
    server = session = endpoint = None
    try:
        if not env.get("AWS_ENDPOINT_URL_FIREHOSE"):
            ensure_moto()
            server, endpoint = start_moto()
            session = create_stream(endpoint)
            print(f"Firehose stand-in (moto) at {endpoint}, delivery stream {STREAM}", flush=True)
            env.update({
                "AWS_ENDPOINT_URL_FIREHOSE": endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": REGION,
                "FIREHOSE_STREAM_NAME": env.get("FIREHOSE_STREAM_NAME") or STREAM,
            })
            if not env.get("DEAD_LETTER_BUCKET"):
                env.update({"AWS_ENDPOINT_URL_S3": endpoint, "DEAD_LETTER_BUCKET": DEAD_LETTER_BUCKET})
        env.setdefault("RUST_LOG", "info")
        result = subprocess.run(["cargo", "run", "--quiet", *profile, "--example", "run_local", "--", event], env=env)
        if result.returncode != 0:
            sys.exit(result.returncode)
        if session is not None:
            show_delivered(session, endpoint)
            if env.get("DEAD_LETTER_BUCKET") == DEAD_LETTER_BUCKET:
                show_dead_letter(session, endpoint)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
