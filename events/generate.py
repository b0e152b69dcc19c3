#!/usr/bin/env python3
"""Writes the sample Kinesis events in this folder. Deterministic: run it again and nothing changes.

    python3 events/generate.py          write them
    python3 events/generate.py --check  fail if the files here differ from what this script writes

kinesis.json          the `make run` demo: plain JSON, text, CloudWatch Logs (DATA and CONTROL), a mapping
                      conflict, a malformed record, a KPL aggregate and an NDJSON record, so every outcome and
                      every record kind shows up
plain.json            100 plain JSON log records
cloudwatch-logs.json  gzip CloudWatch Logs subscription envelopes, DATA and CONTROL
malformed.json        one of every kind of bad record next to a good one
preprocessing.json    what documents gain or lose on the way, with the settings in preprocessing.env (which
                      `make run EVENT=events/preprocessing.json` applies): Lambda JSON logs and an ECS logger's lines
                      merged, a clash, health checks filtered (one record of nothing else: skipped), documents
                      routed by log group and service, static fields and provenance
"""
import base64
import gzip
import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
SHARD = "shardId-000000000000"
STREAM_ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/app-logs"
# 2026-11-22T08:00:00Z
ARRIVAL = 1795334400.0
SEQUENCE_BASE = 49659430837140296285178254290958203049934046452683522050


def sequence(i):
    # Real sequence numbers are 56 digits and grow by large, uneven steps within a shard.
    return str(SEQUENCE_BASE + i * 1_000_000_000_000 + i * 7)


def record(i, data, partition_key="app"):
    seq = sequence(i)
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": partition_key,
            "sequenceNumber": seq,
            "data": data if isinstance(data, str) else base64.b64encode(data).decode(),
            "approximateArrivalTimestamp": round(ARRIVAL + i * 0.25, 3),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"{SHARD}:{seq}",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/kinesis-es-indexer",
        "awsRegion": "eu-west-1",
        "eventSourceARN": STREAM_ARN,
    }


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def js(value) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def cloudwatch(events, group="/aws/lambda/checkout", stream="2026/11/22/[$LATEST]0f1e2d3c4b5a"):
    return gz(js({
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": group,
        "logStream": stream,
        "subscriptionFilters": ["to-kinesis"],
        "logEvents": [
            {"id": str(36000000000000000000000000000000000000000000000000000000 + n), "timestamp": 1795334400000 + n * 1000, "message": m}
            for n, m in enumerate(events)
        ],
    }))


CONTROL = gz(js({
    "messageType": "CONTROL_MESSAGE",
    "owner": "CloudwatchLogs",
    "logGroup": "",
    "logStream": "",
    "subscriptionFilters": [],
    "logEvents": [{"id": "", "timestamp": 1795334400000, "message": "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}],
}))


def kpl_aggregate(name):
    """An aggregate made once by AWS's aggregation library (events/kpl_fixtures.py), kept in the test fixtures."""
    fixtures = json.loads((HERE.parent / "tests" / "fixtures" / "kpl_aggregates.json").read_text())
    return base64.b64decode(fixtures[name]["aggregate_base64"])


def event(datas):
    return {"Records": [record(i, d) for i, d in enumerate(datas)]}


CHECK = "--check" in sys.argv[1:]
STALE = []


def write(name, value):
    text = json.dumps(value, indent=2) + "\n"
    path = HERE / name
    if CHECK:
        if not path.exists() or path.read_text() != text:
            STALE.append(name)
        return
    path.write_text(text)


def main():
    write("kinesis.json", event([
        js({"@timestamp": "2026-11-22T08:00:00.000Z", "level": "info", "service": "checkout", "message": "order placed", "order_id": "A-1001", "latency_ms": 31}),
        js({"level": "warn", "service": "checkout", "message": "payment retry", "order_id": "A-1002", "latency_ms": 250}),
        js({"event": "match_end", "player_id": 17, "score": 3120, "latency_ms": 12}),
        b"2026-11-22 08:00:03 GET /health 200 1ms\n",
        cloudwatch(["START RequestId: 7c1f Version: $LATEST", '{"level":"info","msg":"charged card","amount":42.5}', "END RequestId: 7c1f"]),
        CONTROL,
        js({"level": "error", "service": "checkout", "message": "timeout", "latency_ms": "slow"}),
        "this is not base64!",
        js({"level": "info", "service": "search", "message": "query", "latency_ms": 8}),
        js({"level": "info", "service": "search", "message": "query", "latency_ms": 9}),
        js({"event": "login", "player_id": 18, "latency_ms": 20}),
        js({"event": "login", "player_id": 19, "latency_ms": 22}),
        kpl_aggregate("json_objects"),
        b"\n".join(js({"@timestamp": f"2026-11-22T08:00:05.{n}00Z", "service": "agent", "message": f"line {n} of an NDJSON record", "latency_ms": n}) for n in range(3)) + b"\n",
    ]))
    write("plain.json", event([
        js({"@timestamp": f"2026-11-22T08:{i // 60:02d}:{i % 60:02d}.000Z", "level": "info", "service": "api", "message": f"request {i}", "status": 200, "latency_ms": i % 97})
        for i in range(100)
    ]))
    write("cloudwatch-logs.json", event([
        cloudwatch([f"line {n} of batch one" for n in range(5)]),
        CONTROL,
        cloudwatch([f"line {n} of batch two" for n in range(3)], group="/aws/ecs/api", stream="api/web/0a1b2c"),
    ]))
    malformed = event([
        js({"message": "a good record between bad ones"}),
        "@@@ not base64 @@@",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00broken gzip",
        gz(b"\0" * (64 * 1024 * 1024)),  # a gzip bomb: 64 MiB of zeros, more than MAX_RECORD_BYTES' default 32 MiB
        b"caf\xe9 latin-1, not UTF-8",
        b"",
        b"[1, 2, 3]",
        b'{"unterminated": ',
    ])
    # A record without data: the event shape itself is broken for this one record.
    malformed["Records"].append({"eventID": f"{SHARD}:{sequence(8)}", "kinesis": {"sequenceNumber": sequence(8), "partitionKey": "app"}})
    write("malformed.json", malformed)
    lambda_json = lambda at, level, message: json.dumps({"timestamp": at, "level": level, "requestId": "7c1f0b8e-1d2a-4c3b-9e4f-5a6b7c8d9e0f", "message": message}, separators=(",", ":"))
    write("preprocessing.json", event([
        cloudwatch([
            "START RequestId: 7c1f0b8e-1d2a-4c3b-9e4f-5a6b7c8d9e0f Version: $LATEST",
            lambda_json("2026-11-22T07:59:59.120Z", "INFO", "order placed"),
            lambda_json("2026-11-22T07:59:59.480Z", "ERROR", "payment declined"),
            '{"level":"WARN","aws":{"region":"eu-west-1"},"message":"a field named as the envelope\'s"}',
            "GET /health 200 1ms",
        ]),
        cloudwatch([
            '{"@timestamp":"2026-11-22T07:59:58.000Z","log.level":"error","message":"upstream timeout","service.name":"api","ecs.version":"1.6.0"}',
            "GET /health 200 0ms",
        ], group="/aws/ecs/api", stream="api/web/0a1b2c"),
        js({"@timestamp": "2026-11-22T08:00:02.000Z", "service": {"name": "Search"}, "message": "query", "latency_ms": 8}),
        b"\n".join([
            js({"service": {"name": "cart"}, "message": "item added"}),
            b"GET /health 200 2ms",
            js({"service": {"name": "cart"}, "message": "item removed"}),
        ]) + b"\n",
        b"GET /health 200 1ms\nGET /health 200 1ms\n",
    ]))

if __name__ == "__main__":
    main()
    if STALE:
        sys.exit(f"events/{', '.join(STALE)} differ from what events/generate.py writes: run `make events`")
