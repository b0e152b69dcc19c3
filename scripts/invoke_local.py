#!/usr/bin/env python3
"""`make invoke EVENT=…`: the function under `cargo lambda watch` (bound to 127.0.0.1), invoked with
`cargo lambda invoke --data-file`, printing the batch response, as users run Lambda functions locally.

Elasticsearch and Firehose: the project's doubles (testkit's `doubles` binary) unless ES_URL /
AWS_ENDPOINT_URL_FIREHOSE are set. `make invoke` installs cargo-lambda in .venv.

    python3 scripts/invoke_local.py [events/kinesis.json]
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

REGION = "eu-west-1"
STREAM = "kinesis-es-indexer-retry-later"


def ensure_cargo_lambda():
    if shutil.which("cargo-lambda"):
        return
    sys.exit("invoke_local: cargo-lambda is missing: run `make invoke`, which installs deploy/requirements/deploy.txt "
             "in the project's .venv")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port, process, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"cargo lambda watch exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"cargo lambda watch did not listen on 127.0.0.1:{port} within {seconds} s")


def main():
    event = sys.argv[1] if len(sys.argv) > 1 else "events/kinesis.json"
    ensure_cargo_lambda()
    env = dict(os.environ)
    doubles = watch = None
    try:
        if not env.get("ES_URL") or not env.get("AWS_ENDPOINT_URL_FIREHOSE"):
            subprocess.run(["cargo", "build", "--quiet", "-p", "kinesis-es-indexer-testkit", "--bin", "doubles"], check=True)
            doubles = subprocess.Popen(["target/debug/doubles"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            urls = json.loads(doubles.stdout.readline())
            env.setdefault("ES_URL", urls["es_url"])
            if not env.get("AWS_ENDPOINT_URL_FIREHOSE"):
                env.update({"AWS_ENDPOINT_URL_FIREHOSE": urls["firehose_url"], "FIREHOSE_STREAM_NAME": env.get("FIREHOSE_STREAM_NAME") or STREAM})
            print(f"Elasticsearch: {env['ES_URL']}  Firehose: {env['AWS_ENDPOINT_URL_FIREHOSE']}", flush=True)
        env.setdefault("AWS_REGION", REGION)
        env.setdefault("AWS_ACCESS_KEY_ID", "testing")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        port = free_port()
        started = time.monotonic()
        # cargo lambda watch listens on every interface unless told otherwise.
        watch = subprocess.Popen(
            ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(port), "--bin", "bootstrap", "--ignore-changes"],
            env=env,
            # The function logs to stdout; VERBOSE=1 shows its log lines and cargo-lambda's.
            stdout=None if env.get("VERBOSE") else subprocess.DEVNULL,
            stderr=None if env.get("VERBOSE") else subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(port, watch, 120)
        result = subprocess.run(
            ["cargo", "lambda", "invoke", "--invoke-address", "127.0.0.1", "--invoke-port", str(port), "--data-file", event, "--output-format", "json", "bootstrap"],
            env=env,
            capture_output=True,
            text=True,
        )
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            sys.exit(f"cargo lambda invoke failed: {result.stderr.strip()}")
        print(f"Batch response ({elapsed:.1f} s from `cargo lambda watch` start to the first response):")
        print(result.stdout.strip())
    finally:
        if watch is not None:
            os.killpg(watch.pid, 15)
            watch.wait()
        if doubles is not None:
            doubles.stdin.close()
            doubles.wait(timeout=10)


if __name__ == "__main__":
    main()
