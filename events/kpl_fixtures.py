#!/usr/bin/env python3
"""Writes tests/fixtures/kpl_aggregates.json: KPL-aggregated Kinesis record data made by AWS's own aggregation library.

Run once by hand (the output is committed, so `make test` and events/generate.py need neither library):

    python3 -m pip install aws-kinesis-agg protobuf
    python3 events/kpl_fixtures.py

Each fixture has its user records (partition key, and data as UTF-8 text or base64 for binary data) and the
aggregate's bytes as base64: magic F3 89 9A C2, the AggregatedRecord protobuf, its MD5. `bad_key_index` is a
well-formed aggregate (right MD5) whose record points past the partition key table, built with the library's own
protobuf messages.
"""
import base64
import gzip
import hashlib
import json
import pathlib

import aws_kinesis_agg
from aws_kinesis_agg.aggregator import RecordAggregator  # first: it puts the package's folder on sys.path
from aws_kinesis_agg import messages_pb2  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "kpl_aggregates.json"


def js(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def aggregate(user_records, explicit_hash_keys=None):
    aggregator = RecordAggregator()
    for n, (partition_key, data) in enumerate(user_records):
        ehk = explicit_hash_keys[n] if explicit_hash_keys else None
        assert aggregator.add_user_record(partition_key, data, ehk) is None, "one aggregate per fixture"
    _, _, data = aggregator.clear_and_get().get_contents()
    return data


def described(user_records, data):
    def text(raw):
        try:
            return {"text": raw.decode("utf-8")}
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode()}
    return {
        "user_records": [dict(partition_key=pk, **text(raw)) for pk, raw in user_records],
        "aggregate_base64": base64.b64encode(data).decode(),
    }


def main():
    fixtures = {}

    checkout = [
        ("order-1001", js({"@timestamp": "2026-11-22T08:00:04.000Z", "service": "checkout", "message": "cart opened", "order_id": "A-1001"})),
        ("order-1002", js({"@timestamp": "2026-11-22T08:00:04.100Z", "service": "checkout", "message": "cart opened", "order_id": "A-1002"})),
        ("order-1001", js({"@timestamp": "2026-11-22T08:00:04.200Z", "service": "checkout", "message": "paid", "order_id": "A-1001"})),
    ]
    fixtures["json_objects"] = described(checkout, aggregate(checkout))

    cloudwatch = gzip.compress(js({
        "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "/aws/lambda/api",
        "logStream": "2026/11/22/[$LATEST]aa", "subscriptionFilters": ["to-kinesis"],
        "logEvents": [
            {"id": "1", "timestamp": 1795334405000, "message": "first"},
            {"id": "2", "timestamp": 1795334405001, "message": "second"},
        ],
    }), mtime=0)
    mixed = [
        ("a", js({"level": "info", "message": "a JSON object"})),
        ("b", b"plain text from a KPL producer\n"),
        ("a", js({"n": 1}) + b"\n" + js({"n": 2}) + b"\n\n" + js({"n": 3}) + b"\n"),
        ("c", gzip.compress(js({"message": "gzip inside the aggregate"}), mtime=0)),
        ("c", cloudwatch),
    ]
    fixtures["mixed_kinds"] = described(mixed, aggregate(mixed))

    hashed = [("k1", js({"message": "one"})), ("k2", js({"message": "two"}))]
    keys = ["0", "170141183460469231731687303715884105728"]
    fixtures["explicit_hash_keys"] = described(hashed, aggregate(hashed, keys))

    single = [("solo", js({"message": "one user record"}))]
    fixtures["one_user_record"] = described(single, aggregate(single))

    # A well-formed aggregate whose record names partition key 5 of a table of 1.
    message = messages_pb2.AggregatedRecord()
    message.partition_key_table.append("only")
    record = message.records.add()
    record.partition_key_index = 5
    record.data = js({"message": "orphan"})
    body = message.SerializeToString()
    bad = aws_kinesis_agg.MAGIC + body + hashlib.md5(body).digest()
    fixtures["bad_key_index"] = {"user_records": [], "aggregate_base64": base64.b64encode(bad).decode()}

    OUT.write_text(json.dumps(fixtures, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
