#!/usr/bin/env python3
"""`make firehose-pipeline`: installs the ingest pipeline and index template that make Firehose's deliveries land on
the same _index and _id as the indexer's direct writes (deploy/firehose-pipeline.json, deploy/firehose-index-template.json).

Authenticates as the function does, from the same variables:
- ES_URL: the cluster (never with user:password in it);
- ES_AUTH: `sigv4` by default for an Amazon OpenSearch Service or Serverless endpoint, else `basic` when
  ES_USERNAME/ES_PASSWORD are set, `api-key` with ES_API_KEY, else none. SigV4 signs with botocore's default
  credential chain (environment, profile, SSO, instance or task role: run it as a principal that may
  `es:ESHttpPut` on the domain), with the region the endpoint names (else AWS_REGION) and ES_SIGV4_SERVICE
  (`es`, or `aoss` for Serverless).
- FIREHOSE_INDEX_NAME: the delivery stream's index name (the stack's `FirehoseIndexName` output; default
  kinesis-es-indexer-firehose). The index template applies the pipeline to `<name>*`, the indices Firehose writes.
- DEV_TOOLS=1: print the requests for Dev Tools instead of sending them (no ES_URL needed).
- REMOTE=1 FUNCTION=<stack>-indexer: have the deployed function send them, from inside its VPC, with its role and
  credentials (no ES_URL, no path to the cluster needed; `lambda:InvokeFunction` on it).
"""
import base64
import hashlib
import json
import os
import pathlib
import re
import sys
import urllib.error
import urllib.request

DEPLOY = pathlib.Path(__file__).resolve().parent.parent / "deploy"
PIPELINE = "kinesis-es-indexer-firehose"
TEMPLATE = "kinesis-es-indexer-firehose"
DEFAULT_INDEX_NAME = "kinesis-es-indexer-firehose"
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")


def fail(message):
    sys.exit(f"firehose-pipeline: {message}")


def redact(url):
    """The URL as it may be shown: a user:password part as ***@."""
    return re.sub(r"^(https?://)[^/@]*@", r"\1***@", url)


def aws_endpoint(host):
    """(service, region or None) for an Amazon OpenSearch Service or Serverless endpoint, else None."""
    labels = host.lower().split(".")
    for i, label in enumerate(labels):
        if label in ("es", "aoss") and labels[i + 1 : i + 2] == ["amazonaws"]:
            region = labels[i - 1] if i > 0 and REGION.match(labels[i - 1]) else None
            return label, region
    return None


def authentication(base):
    """A function that adds the request's authentication headers, as the function would authenticate."""
    host = urllib.request.urlparse(base).hostname or ""
    user, password, key = (os.environ.get(n, "").strip() for n in ("ES_USERNAME", "ES_PASSWORD", "ES_API_KEY"))
    aws = aws_endpoint(host)
    mode = os.environ.get("ES_AUTH", "").strip().lower()
    if not mode:
        mode = "sigv4" if aws and not user and not key else "basic" if user else "api-key" if key else "none"
    if mode == "basic":
        if not (user and password):
            fail("ES_AUTH is basic: set ES_USERNAME and ES_PASSWORD")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return lambda method, url, headers, body: {**headers, "Authorization": f"Basic {token}"}
    if mode == "api-key":
        if not key:
            fail("ES_AUTH is api-key: set ES_API_KEY")
        return lambda method, url, headers, body: {**headers, "Authorization": f"ApiKey {key}"}
    if mode == "none":
        return lambda method, url, headers, body: headers
    if mode != "sigv4":
        fail(f"ES_AUTH expects none, basic, api-key or sigv4, got {mode!r}")
    return sigv4(aws)


def sigv4(aws):
    try:
        import botocore.session
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
    except ImportError:
        fail("signing needs botocore: python3 -m pip install botocore")
    service = os.environ.get("ES_SIGV4_SERVICE", "").strip() or (aws[0] if aws else "es")
    region = (aws[1] if aws else None) or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        fail("the endpoint names no region: set AWS_REGION to the domain's region")
    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        fail("no AWS credentials to sign with (environment, profile or role): the same chain the AWS CLI uses")

    def sign(method, url, headers, body):
        # The payload's hash, signed: what OpenSearch Serverless requires and the function sends too.
        headers = {**headers, "X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(credentials.get_frozen_credentials(), service, region).add_auth(request)
        return dict(request.headers.items())

    return sign


def put(base, path, body, authenticate):
    url = f"{base}{path}"
    headers = authenticate("PUT", url, {"Content-Type": "application/json"}, body)
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        fail(f"cannot reach {redact(base)}: {reason} (is the cluster up, and reachable from here: VPC, firewall?)")


def index_template(index_name):
    """deploy/firehose-index-template.json with the pattern of the indices the delivery stream writes."""
    template = json.loads((DEPLOY / "firehose-index-template.json").read_text())
    template["index_patterns"] = [f"{index_name}*"]
    return template


def cluster_url(fail):
    """ES_URL, checked: a URL without credentials in it, without its trailing slash."""
    base = os.environ.get("ES_URL", "").strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        fail("ES_URL: set it to the cluster, e.g. https://search-domain-abc123.eu-west-1.es.amazonaws.com")
    if "@" in (urllib.request.urlparse(base).netloc or ""):
        fail(f"ES_URL must not carry user:password ({redact(base)}): use ES_USERNAME/ES_PASSWORD")
    return base


def put_or_fail(base, path, body, authenticate, fail):
    """PUT `body` at `path`, printing the cluster's answer; a refusal ends the command with it."""
    status, answer = put(base, path, body, authenticate)
    if status >= 300:
        fail(f"PUT {path} answered {status}: {' '.join(answer.split())[:500]}")
    print(f"PUT {path}: {status} {answer}")


def print_for_dev_tools(requests):
    """The requests as OpenSearch Dashboards' or Kibana's Dev Tools take them, for a cluster this machine cannot
    reach (a domain in a VPC): paste them there as a user who may manage pipelines and templates."""
    for path, body in requests:
        print(f"PUT {path.lstrip('/')}\n{json.dumps(json.loads(body), indent=2)}\n")


def send_through_function(requests, function, fail, invoke=None):
    """Has the deployed function put the requests, from inside its VPC, with its role and credentials (REMOTE=1):
    one Lambda invocation of a set-up event (src/setup.rs), whose answer names each request's outcome."""
    if not function:
        fail("REMOTE=1 needs FUNCTION, the deployed function's name (<stack>-indexer)")
    event = {"kinesis_es_indexer_setup": {"requests": [{"path": path, "body": json.loads(body)} for path, body in requests]}}
    if invoke is None:
        try:
            import boto3
        except ImportError:
            fail("REMOTE=1 needs boto3: run it through make, which installs deploy/requirements/cluster.txt in .venv")

        def invoke(payload):
            answer = boto3.client("lambda").invoke(FunctionName=function, Payload=payload)
            return answer.get("FunctionError"), answer["Payload"].read()

    error, payload = invoke(json.dumps(event).encode())
    if error:
        fail(f"{function} failed the set-up event ({error}): {payload.decode(errors='replace')[:500]}")
    outcomes = json.loads(payload).get("setup")
    if not isinstance(outcomes, list):
        fail(f"{function} did not answer a set-up event (an older version? deploy this one): {payload.decode(errors='replace')[:300]}")
    refused = []
    for outcome in outcomes:
        status = outcome.get("status")
        print(f"PUT /{outcome['path']} through {function}: {status if status is not None else '-'} {outcome.get('answer', '')}")
        if status is None or status >= 300:
            refused.append(outcome["path"])
    if refused:
        fail(f"not applied: {', '.join(refused)}")


def main():
    index_name = os.environ.get("FIREHOSE_INDEX_NAME", "").strip() or DEFAULT_INDEX_NAME
    if not re.match(r"^[a-z0-9][a-z0-9._-]*$", index_name):
        fail(f"FIREHOSE_INDEX_NAME {index_name!r} is not an index name (lowercase letters, digits, . _ -)")
    pipeline = (DEPLOY / "firehose-pipeline.json").read_bytes()
    json.loads(pipeline)
    requests = [(f"/_ingest/pipeline/{PIPELINE}", pipeline),
                (f"/_index_template/{TEMPLATE}", json.dumps(index_template(index_name)).encode())]
    if os.environ.get("DEV_TOOLS"):
        print_for_dev_tools(requests)
        return
    if os.environ.get("REMOTE"):
        send_through_function(requests, os.environ.get("FUNCTION", "").strip(), fail)
        print(f"Firehose's deliveries to {index_name}* now keep the indexer's _index and _id.")
        return
    base = cluster_url(fail)
    authenticate = authentication(base)
    for path, body in requests:
        put_or_fail(base, path, body, authenticate, fail)
    print(f"Firehose's deliveries to {index_name}* now keep the indexer's _index and _id.")


if __name__ == "__main__":
    main()
