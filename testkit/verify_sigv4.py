#!/usr/bin/env python3
"""Recomputes a request's SigV4 signature with botocore, an implementation independent of the indexer's signer.

Reads one JSON object on stdin: method, url, headers (lowercase names), body_base64 (the bytes as received),
region, service and credentials (a list of {access_key, secret_key, session_token}). Prints {"ok": true,
"access_key": …} or {"ok": false, "why": …}.
"""
import base64
import hashlib
import hmac
import json
import re
import sys

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def verify(request):
    headers = request["headers"]
    authorization = headers.get("authorization", "")
    match = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})",
        authorization,
    )
    if not match:
        return {"ok": False, "why": f"no SigV4 authorization header: {authorization!r}"}
    access_key, date, region, service, signed_headers, signature = match.groups()
    if (region, service) != (request["region"], request["service"]):
        return {"ok": False, "why": f"signed for {service} in {region}"}
    known = {c["access_key"]: c for c in request["credentials"]}
    if access_key not in known:
        return {"ok": False, "why": f"unknown access key {access_key}"}
    credentials = known[access_key]
    body = base64.b64decode(request["body_base64"])
    if headers.get("x-amz-content-sha256") != hashlib.sha256(body).hexdigest():
        return {"ok": False, "why": "x-amz-content-sha256 is not the hash of the bytes received"}
    if credentials.get("session_token") and headers.get("x-amz-security-token") != credentials["session_token"]:
        return {"ok": False, "why": "the session token is missing or not the credentials' own"}
    if not headers.get("x-amz-date", "").startswith(date):
        return {"ok": False, "why": "x-amz-date does not match the credential scope"}
    names = signed_headers.split(";")
    for required in ("host", "x-amz-date", "x-amz-content-sha256"):
        if required not in names:
            return {"ok": False, "why": f"{required} is not signed"}
    if credentials.get("session_token") and "x-amz-security-token" not in names:
        return {"ok": False, "why": "x-amz-security-token is not signed"}
    aws_request = AWSRequest(method=request["method"], url=request["url"], data=body, headers={n: headers[n] for n in names})
    aws_request.context["timestamp"] = headers["x-amz-date"]
    signer = SigV4Auth(Credentials(access_key, credentials["secret_key"], credentials.get("session_token")), service, region)
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    if not hmac.compare_digest(expected, signature):
        return {"ok": False, "why": "The request signature we calculated does not match the signature you provided."}
    return {"ok": True, "access_key": access_key}


if __name__ == "__main__":
    print(json.dumps(verify(json.load(sys.stdin))))
