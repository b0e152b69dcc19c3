#!/usr/bin/env python3
"""`make firehose-pipeline`: installs the ingest pipeline and index template that make Firehose's deliveries land on
the same _index and _id as the indexer's direct writes (deploy/firehose-pipeline.json, deploy/firehose-index-template.json).

Reads ES_URL and ES_USERNAME/ES_PASSWORD or ES_API_KEY, as the function does. Standard library only.
"""
import base64
import json
import os
import pathlib
import sys
import urllib.error
import urllib.request

DEPLOY = pathlib.Path(__file__).resolve().parent.parent / "deploy"
PIPELINE = "kinesis-es-indexer-firehose"
TEMPLATE = "kinesis-es-indexer-firehose"


def put(base, path, body, headers):
    request = urllib.request.Request(f"{base}{path}", data=body, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def main():
    base = os.environ.get("ES_URL", "").strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        sys.exit("ES_URL: set it to the cluster, e.g. https://search-domain.eu-west-1.es.amazonaws.com")
    headers = {"Content-Type": "application/json"}
    user, password, key = (os.environ.get(n, "").strip() for n in ("ES_USERNAME", "ES_PASSWORD", "ES_API_KEY"))
    if user:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    elif key:
        headers["Authorization"] = f"ApiKey {key}"
    for path, file in ((f"/_ingest/pipeline/{PIPELINE}", "firehose-pipeline.json"),
                       (f"/_index_template/{TEMPLATE}", "firehose-index-template.json")):
        body = (DEPLOY / file).read_bytes()
        json.loads(body)
        status, answer = put(base, path, body, headers)
        if status >= 300:
            sys.exit(f"PUT {path} answered {status}: {answer}")
        print(f"PUT {path}: {status} {answer}")


if __name__ == "__main__":
    main()
