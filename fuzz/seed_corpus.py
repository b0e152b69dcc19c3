#!/usr/bin/env python3
"""Seeds the fuzzer's corpus (fuzz/corpus/decode_record/) with the decoded data of every record in events/*.json."""
import base64
import binascii
import hashlib
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus" / "decode_record"
CORPUS.mkdir(parents=True, exist_ok=True)
written = 0
for path in sorted((ROOT / "events").glob("*.json")):
    for record in json.loads(path.read_text())["Records"]:
        data = record.get("kinesis", {}).get("data")
        if data is None:
            continue
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raw = data.encode()
        if len(raw) > 256 * 1024:
            continue
        (CORPUS / hashlib.sha1(raw).hexdigest()).write_bytes(raw)
        written += 1
print(f"{written} seeds in {CORPUS.relative_to(ROOT)}")
