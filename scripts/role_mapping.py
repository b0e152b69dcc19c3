#!/usr/bin/env python3
"""`make role-mapping`: the fine-grained access control requests that let the stack's two roles write, printed for
OpenSearch Dashboards' Dev Tools (docs/deploy.md, "Fine-grained access control: the two roles"). The security
plugin's API is for its administrators: paste them there as the master user.

- STACK: the stack whose outputs name the roles (FunctionRoleArn, FirehoseRoleArn, FirehoseIndexName), read with
  boto3; or FUNCTION_ROLE_ARN and FIREHOSE_ROLE_ARN (and FIREHOSE_INDEX_NAME) given directly.
- ES_INDEX: the function's index pattern (default logs-%Y.%m.%d), whose literal start names the indices the roles
  may write (`logs-*`), and their data streams' backing indices (`.ds-logs-*`).

    python3 scripts/role_mapping.py
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import firehose_pipeline  # noqa: E402  (the Firehose index name's default)
import index_template  # noqa: E402  (ES_INDEX's pattern)

FUNCTION_ROLE = "kinesis-es-indexer"
FIREHOSE_ROLE = "kinesis-es-indexer-firehose"


def fail(message):
    sys.exit(f"role-mapping: {message}")


def stack_outputs(stack):
    try:
        import boto3
    except ImportError:
        fail("STACK needs boto3: run it through make, which installs deploy/requirements/cluster.txt in .venv")
    (found,) = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    return {output["OutputKey"]: output["OutputValue"] for output in found.get("Outputs", [])}


def requests(function_role_arn, firehose_role_arn, pattern, firehose_index):
    """(path, body) of each request: the function's role and its mapping; Firehose's, when the stack has one."""
    backing = ".ds-" + pattern
    function_role = {
        # `_bulk` is authorised as a cluster action for the request, then per index for each item. The reads are
        # make doctor's (the Firehose pipeline and template; what today's index is), and read no document.
        "cluster_permissions": ["indices:data/write/bulk", "cluster:admin/ingest/pipeline/get",
                                "indices:admin/index_template/get"],
        "index_permissions": [{
            "index_patterns": [pattern, backing],
            "allowed_actions": ["indices:data/write/bulk*", "indices:data/write/index", "indices:admin/create",
                                "indices:admin/data_stream/create", "indices:admin/mapping/put",
                                "indices:admin/resolve/index", "indices:admin/aliases/get"],
        }],
    }
    found = [(f"_plugins/_security/api/roles/{FUNCTION_ROLE}", function_role),
             (f"_plugins/_security/api/rolesmapping/{FUNCTION_ROLE}", {"backend_roles": [function_role_arn]})]
    if firehose_role_arn:
        firehose_role = {
            "cluster_permissions": ["cluster_composite_ops", "cluster_monitor"],
            "index_permissions": [{"index_patterns": [f"{firehose_index}*", pattern], "allowed_actions": ["create_index", "manage", "crud"]}],
        }
        found += [(f"_plugins/_security/api/roles/{FIREHOSE_ROLE}", firehose_role),
                  (f"_plugins/_security/api/rolesmapping/{FIREHOSE_ROLE}", {"backend_roles": [firehose_role_arn]})]
    return found


def main():
    stack = os.environ.get("STACK", "").strip()
    outputs = stack_outputs(stack) if stack else {}
    function_role_arn = os.environ.get("FUNCTION_ROLE_ARN", "").strip() or outputs.get("FunctionRoleArn", "")
    firehose_role_arn = os.environ.get("FIREHOSE_ROLE_ARN", "").strip() or outputs.get("FirehoseRoleArn", "")
    if not function_role_arn:
        fail("name the stack (STACK=logs-indexer) or the roles (FUNCTION_ROLE_ARN=…, FIREHOSE_ROLE_ARN=…)")
    firehose_index = (os.environ.get("FIREHOSE_INDEX_NAME", "").strip() or outputs.get("FirehoseIndexName", "")
                      or firehose_pipeline.DEFAULT_INDEX_NAME)
    try:
        pattern = index_template.pattern_of(os.environ.get("ES_INDEX", "").strip() or index_template.DEFAULT_INDEX)
    except ValueError as why:
        fail(str(why))
    for path, body in requests(function_role_arn, firehose_role_arn, pattern, firehose_index):
        print(f"PUT {path}\n{json.dumps(body, indent=2)}\n")


if __name__ == "__main__":
    main()
