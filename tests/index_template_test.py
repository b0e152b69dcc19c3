"""`make index-template` (scripts/index_template.py) checked offline: the pattern it derives from ES_INDEX, the
names it writes for TIMESTAMP_FIELD and MESSAGE_JSON_FIELD, and that deploy/index-template.json types every field
the function itself writes (the envelope's aws.cloudwatch.*, the provenance aws.kinesis.*, cloud.account.id, the
canary). `tests/pipeline/mappings.rs` installs it in the Elasticsearch double and indexes public loggers' lines.

    python3 -m unittest discover -s tests -p '*_test.py'
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import unittest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import index_template  # noqa: E402


def declared(properties, prefix=""):
    """Every field path the template's properties declare."""
    for name, mapping in properties.items():
        path = f"{prefix}{name}"
        yield path
        yield from declared(mapping.get("properties", {}), f"{path}.")


def dev_tools_requests(script, **env):
    """What `make firehose-pipeline DEV_TOOLS=1` or `make index-template DEV_TOOLS=1` prints, read back: (path, body)."""
    printed = subprocess.run([sys.executable, f"scripts/{script}"], cwd=ROOT, capture_output=True, text=True, check=True,
                             env={**os.environ, "DEV_TOOLS": "1", "ES_URL": "", **env}).stdout
    return [(path, json.loads(body)) for path, body in re.findall(r"^PUT (\S+)\n(\{.*?^\})$", printed, re.M | re.S)]


class DevToolsTest(unittest.TestCase):
    def test_a_cluster_out_of_reach_gets_the_same_requests_to_paste(self):
        pipeline, template = dev_tools_requests("firehose_pipeline.py", FIREHOSE_INDEX_NAME="retry-later")
        self.assertEqual(pipeline, ("_ingest/pipeline/kinesis-es-indexer-firehose", json.loads((ROOT / "deploy" / "firehose-pipeline.json").read_text())))
        self.assertEqual(template[0], "_index_template/kinesis-es-indexer-firehose")
        self.assertEqual(template[1]["index_patterns"], ["retry-later*"])
        (logs,) = dev_tools_requests("index_template.py", ES_INDEX="app-{log_group}-%Y.%m")
        self.assertEqual((logs[0], logs[1]["index_patterns"]), ("_index_template/kinesis-es-indexer", ["app-*"]))


class RoleMappingTest(unittest.TestCase):
    def test_the_roles_may_write_the_indices_es_index_makes_and_their_data_streams(self):
        function_role, firehose_role = "arn:aws:iam::123456789012:role/fn", "arn:aws:iam::123456789012:role/fh"
        printed = dev_tools_requests("role_mapping.py", FUNCTION_ROLE_ARN=function_role, FIREHOSE_ROLE_ARN=firehose_role,
                                     ES_INDEX="app-{log_group}-%Y.%m", FIREHOSE_INDEX_NAME="retry-later", STACK="")
        requests = dict(printed)
        self.assertEqual(len(printed), 4)
        (own,) = requests["_plugins/_security/api/roles/kinesis-es-indexer"]["index_permissions"]
        self.assertEqual(own["index_patterns"], ["app-*", ".ds-app-*"])
        self.assertIn("indices:admin/data_stream/create", own["allowed_actions"])
        self.assertEqual(requests["_plugins/_security/api/roles/kinesis-es-indexer"]["cluster_permissions"],
                         ["indices:data/write/bulk", "cluster:admin/ingest/pipeline/get", "indices:admin/index_template/get"])
        # make doctor's lookups: what today's index is, never a document.
        self.assertTrue({"indices:admin/resolve/index", "indices:admin/aliases/get"} <= set(own["allowed_actions"]))
        self.assertFalse([action for action in own["allowed_actions"] if action.startswith("indices:data/read")])
        self.assertEqual(requests["_plugins/_security/api/rolesmapping/kinesis-es-indexer"], {"backend_roles": [function_role]})
        (firehose,) = requests["_plugins/_security/api/roles/kinesis-es-indexer-firehose"]["index_permissions"]
        self.assertEqual(firehose["index_patterns"], ["retry-later*", "app-*"])
        self.assertEqual(requests["_plugins/_security/api/rolesmapping/kinesis-es-indexer-firehose"], {"backend_roles": [firehose_role]})
        without_firehose = dev_tools_requests("role_mapping.py", FUNCTION_ROLE_ARN=function_role, FIREHOSE_ROLE_ARN="", STACK="")
        self.assertEqual([path for path, _ in without_firehose], ["_plugins/_security/api/roles/kinesis-es-indexer",
                                                                  "_plugins/_security/api/rolesmapping/kinesis-es-indexer"])
        unnamed = subprocess.run([sys.executable, "scripts/role_mapping.py"], cwd=ROOT, capture_output=True, text=True,
                                 env={**os.environ, "STACK": "", "FUNCTION_ROLE_ARN": ""})
        self.assertNotEqual(unnamed.returncode, 0)
        self.assertIn("STACK=", unnamed.stderr)


class IndexTemplateTest(unittest.TestCase):
    def test_the_pattern_is_es_index_up_to_its_first_date_part_or_placeholder(self):
        cases = {
            "logs-%Y.%m.%d": "logs-*",
            "logs-{log_group|other}-%Y.%m.%d": "logs-*",
            "app-logs": "app-logs",
            "k8s.%Y-%m": "k8s.*",
        }
        for es_index, pattern in cases.items():
            self.assertEqual(index_template.pattern_of(es_index), pattern, es_index)
        with self.assertRaises(ValueError):
            index_template.pattern_of("{log_group}-%Y")

    def test_the_names_the_function_is_configured_with_are_the_ones_typed(self):
        body = index_template.template("app-*", "timestamp", "structured")
        properties = body["template"]["mappings"]["properties"]
        self.assertEqual(body["index_patterns"], ["app-*"])
        self.assertEqual(properties["timestamp"], {"type": "date"})
        self.assertEqual(properties["structured"], {"type": "object", "enabled": False})
        self.assertNotIn("@timestamp", properties)
        self.assertNotIn("json", properties)

    def test_every_field_the_function_writes_is_typed(self):
        body = json.loads((ROOT / "deploy" / "index-template.json").read_text())
        paths = set(declared(body["template"]["mappings"]["properties"]))
        # The provenance's fields, as src/record/batch.rs names them (KinesisMetadata's members).
        batch = (ROOT / "src" / "record" / "batch.rs").read_text()
        struct = re.search(r"struct KinesisMetadata<'a> \{(.*?)\n    \}", batch, re.S).group(1)
        kinesis = re.findall(r"^\s*(?:r#)?(\w+): ", struct, re.M)
        self.assertEqual(len(kinesis), 6, kinesis)
        written = {f"aws.kinesis.{name}" for name in kinesis}
        # The CloudWatch Logs envelope's, as src/record/cloudwatch.rs writes them, and the canary's field.
        cloudwatch = (ROOT / "src" / "record" / "cloudwatch.rs").read_text()
        for name in ("log_group", "log_stream", "event_id"):
            self.assertIn(f'"{name}":', cloudwatch)
            written.add(f"aws.cloudwatch.{name}")
        self.assertIn('"cloud":{"account":{"id":', cloudwatch)
        written |= {"cloud.account.id", "kinesis_es_indexer_canary", "@timestamp", "message", "json"}
        self.assertEqual(written - paths, set(), "fields the function writes that the template leaves to dynamic mapping")
        self.assertEqual(body["priority"], 50, "below the built-in templates (100): their data streams keep them")
        self.assertFalse(body["template"]["mappings"]["date_detection"])


if __name__ == "__main__":
    unittest.main()
