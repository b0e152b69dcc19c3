"""template.yaml, checked offline: cfn-lint finds nothing, the SAM translator transforms it, and it stays in step
with the code (every variable Config reads is set by the template and documented in README.md).

    python3 -m unittest discover -s tests -p '*_test.py'
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys
import unittest

from cfnlint.decode import decode
from samtranslator.translator.transform import transform

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The translator fills AWS::Region and AWS::Partition from a boto session; offline, it needs a region to name.
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
TEMPLATE = ROOT / "template.yaml"

# Read by the local runner only, or set by Lambda itself (the region of the function); never by a deployer.
NOT_DEPLOYED = {"RUST_LOG", "AWS_REGION", "AWS_DEFAULT_REGION"}


def config_variables():
    """Every environment variable src/config.rs reads."""
    source = (ROOT / "src" / "config.rs").read_text()
    return set(re.findall(r'get\(\s*"([A-Z0-9_]+)"\s*\)', source)) | set(re.findall(r'number\(\s*&get,\s*"([A-Z0-9_]+)"', source))


class StubPolicyLoader:
    """The translator asks IAM for managed policy ARNs; the template names none, so nothing is looked up."""

    def load(self):
        return {}


def transformed(parameters=None):
    template, matches = decode(str(TEMPLATE))
    assert not matches, matches
    # What `sam deploy` submits: `sam build`/`sam package` has replaced the local CodeUri by the uploaded artifact.
    template["Resources"]["Function"]["Properties"]["CodeUri"] = "s3://artifacts/kinesis-es-indexer.zip"
    values = {"AWS::Region": "eu-west-1", "EsUrl": "https://search-logs.eu-west-1.es.amazonaws.com", **(parameters or {})}
    return transform(template, values, StubPolicyLoader())


class TemplateTest(unittest.TestCase):
    def test_cfn_lint_finds_nothing(self):
        cfn_lint = shutil.which("cfn-lint") or str(pathlib.Path(sys.executable).parent / "cfn-lint")
        result = subprocess.run([cfn_lint, str(TEMPLATE)], capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_the_sam_translator_transforms_it(self):
        resources = transformed()["Resources"]
        function = resources["Function"]
        self.assertEqual(function["Type"], "AWS::Lambda::Function")
        self.assertEqual(function["Properties"]["Runtime"], "provided.al2023")
        self.assertEqual(function["Properties"]["Handler"], "bootstrap")
        self.assertEqual(function["Properties"]["LoggingConfig"]["LogFormat"], "JSON")
        mapping = resources["EventSourceMapping"]["Properties"]
        self.assertEqual(mapping["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        self.assertTrue(mapping["BisectBatchOnFunctionError"])
        self.assertEqual(mapping["DestinationConfig"]["OnFailure"]["Destination"], {"Fn::GetAtt": ["FailedBatchesBucket", "Arn"]})

    def test_every_variable_the_function_reads_is_set_by_the_template(self):
        variables = transformed()["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
        self.assertEqual(config_variables() - NOT_DEPLOYED - set(variables), set())
        self.assertEqual(set(variables) - config_variables(), set(), "the template sets nothing the function ignores")

    def test_every_variable_is_documented_in_the_readme(self):
        table_rows = [line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
        for variable in config_variables():
            documented = any(f"`{variable}`" in row.split(" | ")[0] for row in table_rows)
            self.assertTrue(documented, f"{variable} is missing from README's configuration table")

    def test_the_function_may_do_only_its_job(self):
        role = transformed()["Resources"]["FunctionRole"]["Properties"]
        statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
        # A conditional statement is `{"Fn::If": [condition, statement, AWS::NoValue]}`.
        statements = [s["Fn::If"][1] if "Fn::If" in s else s for s in statements]
        unscoped = [s for s in statements if s.get("Resource") == "*"]
        self.assertEqual([s["Action"] for s in unscoped], ["kinesis:ListStreams"], "only ListStreams cannot be scoped")
        actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
        self.assertIn("kinesis:GetRecords", actions)
        self.assertNotIn("es:*", actions)

    def test_firehose_resources_exist_only_when_asked_for(self):
        template, _ = decode(str(TEMPLATE))
        conditions = template["Conditions"]
        self.assertEqual(template["Resources"]["DeliveryStream"]["Condition"], "CreateDeliveryStream")
        self.assertIn("CreateDeliveryStream", conditions)
        self.assertEqual(template["Resources"]["Stream"]["Condition"], "CreateStream")


if __name__ == "__main__":
    unittest.main()
