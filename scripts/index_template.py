#!/usr/bin/env python3
"""`make index-template`: installs an index template that fits what the function writes (deploy/index-template.json)
for the indices ES_INDEX makes, so that their mapping does not depend on which producer wrote first.

What it maps: the timestamp field (TIMESTAMP_FIELD, default @timestamp) as a date; `message` as text; the envelope's
`aws.cloudwatch.*`, `aws.kinesis.*` and `cloud.account.id` as keywords (the arrival time a date); the field a merged
message's clashing fields go under (MESSAGE_JSON_FIELD, default json) kept in _source but not indexed, so its
contents, which differ by logger, never conflict; every other string a keyword (exact match, aggregations), and no
string guessed to be a date (`date_detection: false`: a second time format in one field would be refused).

The pattern is ES_INDEX's literal start followed by `*` (`logs-%Y.%m.%d` → `logs-*`), or INDEX_TEMPLATE_PATTERN. The
priority is 50, below Elasticsearch's built-in templates (100), so that a name they match (a `logs-*-*` data stream)
keeps them. Templates apply to indices created afterwards: today's index keeps its mapping until tomorrow's.

Authenticates as `make firehose-pipeline` does (ES_URL, ES_AUTH and the function's other ES_ variables); DEV_TOOLS=1
prints the request for Dev Tools instead; REMOTE=1 FUNCTION=<stack>-indexer has the deployed function send it.
"""
import json
import os
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import firehose_pipeline  # noqa: E402  (the same authentication and PUT)

TEMPLATE = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "index-template.json"
NAME = "kinesis-es-indexer"
DEFAULT_INDEX = "logs-%Y.%m.%d"


def fail(message):
    sys.exit(f"index-template: {message}")


def pattern_of(es_index):
    """The indices ES_INDEX makes, as an index pattern: its literal start, then `*` (the exact name without any
    date part or placeholder)."""
    cut = min((i for i in (es_index.find("%"), es_index.find("{")) if i >= 0), default=None)
    if cut is None:
        return es_index
    if cut == 0:
        raise ValueError(f"ES_INDEX {es_index!r} starts with a placeholder: set INDEX_TEMPLATE_PATTERN")
    return es_index[:cut] + "*"


def template(pattern, timestamp_field, message_json_field):
    """deploy/index-template.json for these names."""
    body = json.loads(TEMPLATE.read_text())
    body["index_patterns"] = [pattern]
    properties = body["template"]["mappings"]["properties"]
    properties[timestamp_field] = properties.pop("@timestamp")
    properties[message_json_field] = properties.pop("json")
    return body


def main():
    try:
        pattern = os.environ.get("INDEX_TEMPLATE_PATTERN", "").strip() or pattern_of(
            os.environ.get("ES_INDEX", "").strip() or DEFAULT_INDEX
        )
    except ValueError as why:
        fail(str(why))
    if not re.match(r"^[a-z0-9][a-z0-9._*-]*$", pattern):
        fail(f"{pattern!r} is not an index pattern (lowercase letters, digits, . _ - and *)")
    timestamp_field = os.environ.get("TIMESTAMP_FIELD", "").strip() or "@timestamp"
    message_json_field = os.environ.get("MESSAGE_JSON_FIELD", "").strip() or "json"
    body = json.dumps(template(pattern, timestamp_field, message_json_field)).encode()
    path = f"/_index_template/{NAME}"
    if os.environ.get("DEV_TOOLS"):
        firehose_pipeline.print_for_dev_tools([(path, body)])
        return
    if os.environ.get("REMOTE"):
        firehose_pipeline.send_through_function([(path, body)], os.environ.get("FUNCTION", "").strip(), fail)
        print(f"Indices matching {pattern} created from now on take the template (today's keeps its mapping).")
        return
    base = firehose_pipeline.cluster_url(fail)
    firehose_pipeline.put_or_fail(base, path, body, firehose_pipeline.authentication(base), fail)
    print(f"Indices matching {pattern} created from now on take the template (today's keeps its mapping).")


if __name__ == "__main__":
    main()
