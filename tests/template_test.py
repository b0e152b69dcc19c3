"""template.yaml, checked offline: cfn-lint finds nothing, the SAM translator transforms it, and it stays in step
with the code (every variable Config reads is set by the template and documented in README.md).

    python3 -m unittest discover -s tests -p '*_test.py'
"""
import json
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
CONFIGURATION = ROOT / "docs" / "configuration.md"

# Read by the local runner only, or set by Lambda itself (the region of the function); never by a deployer.
NOT_DEPLOYED = {"RUST_LOG", "AWS_REGION", "AWS_DEFAULT_REGION"}


def config_variables():
    """Every environment variable the function reads at cold start: src/config/ and the settings it hands on."""
    files = sorted((ROOT / "src" / "config").glob("*.rs"))
    source = "".join(path.read_text() for path in files)
    return set(re.findall(r'get\(\s*"([A-Z0-9_]+)"\s*\)', source)) | set(re.findall(r'\b(?:number|millis|choice|boolean)\(\s*&?get,\s*"([A-Z0-9_]+)"', source))


class StubPolicyLoader:
    """The translator asks IAM for managed policy ARNs; the template names none, so nothing is looked up."""

    def load(self):
        return {}


def transformed(parameters=None):
    template, matches = decode(str(TEMPLATE))
    assert not matches, matches
    # What `sam deploy` submits: `sam build`/`sam package` has replaced the local CodeUri by the uploaded artifact.
    template["Resources"]["Function"]["Properties"]["CodeUri"] = "s3://artifacts/kinesis-es-indexer.zip"
    return transform(template, submitted(parameters), StubPolicyLoader())


def submitted(parameters=None):
    """The parameter values a test deploys with: EsUrl, which has no default, and the test's own."""
    return {"AWS::Region": "eu-west-1", "EsUrl": "https://search-logs.eu-west-1.es.amazonaws.com", **(parameters or {})}


DOMAIN = "arn:aws:es:eu-west-1:123456789012:domain/logs"
VPC = {"VpcSubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b", "VpcSecurityGroupIds": "sg-0123456789abcdef0"}


def deployed(parameters=None):
    """The transformed template as CloudFormation would create it with these parameters: conditions evaluated,
    `Fn::If` branches chosen, parameters' `Ref`s replaced by their values, `AWS::NoValue` dropped, resources whose
    condition is false left out."""
    template = transformed(parameters)
    given = {**{name: p.get("Default") for name, p in template["Parameters"].items()}, **submitted(parameters)}
    lists = {name for name, p in template["Parameters"].items() if p["Type"] == "CommaDelimitedList"}
    values = {name: (str(v).split(",") if name in lists else v) for name, v in given.items()}
    conditions = {}

    def evaluate(node):
        if not isinstance(node, dict):
            return node
        ((function, argument),) = node.items()
        if function == "Ref":
            return values[argument]
        if function == "Condition":
            return condition(argument)
        if function == "Fn::Equals":
            return evaluate(argument[0]) == evaluate(argument[1])
        if function == "Fn::Not":
            return not evaluate(argument[0])
        if function == "Fn::And":
            return all(evaluate(a) for a in argument)
        if function == "Fn::Or":
            return any(evaluate(a) for a in argument)
        if function == "Fn::Join":
            return argument[0].join(evaluate(argument[1]))
        if function == "Fn::Split":
            return (evaluate(argument[1]) or "").split(argument[0])
        if function == "Fn::Select":
            return evaluate(argument[1])[int(argument[0])]
        if function == "Fn::Sub":
            return re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: str(values[m.group(1)]), argument)
        raise AssertionError(f"no evaluation of {function} in a condition")

    def condition(name):
        if name not in conditions:
            conditions[name] = evaluate(template["Conditions"][name])
        return conditions[name]

    no_value = {"Ref": "AWS::NoValue"}

    def choose(node):
        if isinstance(node, dict):
            if list(node) == ["Fn::If"]:
                name, then, otherwise = node["Fn::If"]
                return choose(then if condition(name) else otherwise)
            if list(node) == ["Ref"] and node["Ref"] in values:
                return values[node["Ref"]]
            if list(node) == ["Fn::Select"]:
                return evaluate(node)
            chosen = {k: choose(v) for k, v in node.items()}
            return {k: v for k, v in chosen.items() if v != no_value}
        if isinstance(node, list):
            return [v for v in (choose(v) for v in node) if v != no_value]
        return node

    resources = {
        name: resource
        for name, resource in template["Resources"].items()
        if "Condition" not in resource or condition(resource["Condition"])
    }
    return choose({**template, "Resources": resources})


def template_parameter(name):
    template, _ = decode(str(TEMPLATE))
    return template["Parameters"][name]


def statements(resources, role):
    policies = resources[role]["Properties"].get("Policies", [])
    return [s for policy in policies for s in policy["PolicyDocument"]["Statement"]]


def actions(statement):
    return [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]


class TemplateTest(unittest.TestCase):
    def test_make_and_the_template_agree_on_the_architecture(self):
        makefile = (ROOT / "Makefile").read_text()
        (default,) = re.findall(r"^ARCH \?= (\S+)$", makefile, re.M)
        template, _ = decode(str(TEMPLATE))
        self.assertEqual(template["Parameters"]["Architecture"]["Default"], default)
        for recipe in ["scripts/deploy.py build --architecture $(ARCH)", "scripts/deploy.py package --architecture $(ARCH)",
                       "--architecture $(ARCH))"]:
            self.assertIn(recipe, makefile)

    def test_rules_use_only_cloudformation_s_rule_functions(self):
        # AWS CloudFormation's "Rule functions" page (intrinsic-function-reference-rules): these, and Ref inside them.
        allowed = {"Fn::And", "Fn::Contains", "Fn::EachMemberEquals", "Fn::EachMemberIn", "Fn::Equals", "Fn::Not",
                   "Fn::Or", "Fn::RefAll", "Fn::ValueOf", "Fn::ValueOfAll", "Ref"}

        def functions(node):
            if isinstance(node, dict):
                return {key for key in node if key.startswith("Fn::") or key in ("Ref", "Condition")} | {
                    f for value in node.values() for f in functions(value)}
            if isinstance(node, list):
                return {f for value in node for f in functions(value)}
            return set()

        self.assertEqual(functions({"Fn::Not": [{"Fn::Equals": [{"Fn::Join": [",", {"Ref": "P"}]}, ""]}]}) - allowed, {"Fn::Join"})
        template, _ = decode(str(TEMPLATE))
        self.assertTrue(template["Rules"])
        for name, rule in template["Rules"].items():
            self.assertEqual(functions(rule) - allowed, set(), name)

    def test_security_groups_are_required_with_subnets_and_not_without(self):
        # The rule evaluated as CloudFormation does: an empty list parameter is [""].
        template, _ = decode(str(TEMPLATE))
        rule = template["Rules"]["VpcNeedsSecurityGroups"]

        def evaluate(node, values):
            ((function, argument),) = node.items()
            if function == "Ref":
                return values[argument].split(",")
            if function == "Fn::Not":
                return not evaluate(argument[0], values)
            if function == "Fn::EachMemberEquals":
                return all(member == argument[1] for member in evaluate(argument[0], values))
            raise AssertionError(function)

        def passes(subnets, groups):
            values = {"VpcSubnetIds": subnets, "VpcSecurityGroupIds": groups}
            return not evaluate(rule["RuleCondition"], values) or all(evaluate(a["Assert"], values) for a in rule["Assertions"])

        self.assertTrue(passes("", ""))
        self.assertTrue(passes("subnet-a,subnet-b", "sg-1"))
        self.assertFalse(passes("subnet-a,subnet-b", ""))

    def test_the_repository_listing_offers_only_the_architecture_it_ships(self):
        sys.path.insert(0, str(ROOT / "scripts"))
        import sar_listing

        template, _ = decode(str(TEMPLATE))
        packaged = sar_listing.narrow(json.loads(json.dumps(template)), "arm64")
        self.assertEqual((packaged["Parameters"]["Architecture"]["AllowedValues"], packaged["Parameters"]["Architecture"]["Default"]), (["arm64"], "arm64"))
        self.assertEqual(packaged["Resources"]["Function"]["Properties"]["Architectures"], [{"Ref": "Architecture"}])
        with self.assertRaises(ValueError):
            sar_listing.narrow(json.loads(json.dumps(template)), "riscv64")

    def test_subscribed_log_groups_get_one_filter_each_into_the_stream_with_a_role_logs_may_assume(self):
        groups = ["/aws/lambda/checkout", "/aws/lambda/payments", "API-Gateway-Execution-Logs_abc/prod"]
        resources = deployed({"SubscribedLogGroups": ",".join(groups)})["Resources"]
        filters = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Logs::SubscriptionFilter"]
        self.assertEqual(sorted(f["LogGroupName"] for f in filters), sorted(groups))
        for subscription in filters:
            self.assertEqual(subscription["DestinationArn"], {"Fn::GetAtt": ["Stream", "Arn"]})
            self.assertEqual(subscription["RoleArn"], {"Fn::GetAtt": ["LogsToStreamRole", "Arn"]})
            self.assertEqual(subscription["FilterPattern"], "")
        role = resources["LogsToStreamRole"]["Properties"]
        (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
        self.assertEqual(trust["Principal"], {"Service": "logs.amazonaws.com"})
        self.assertIn("aws:SourceArn", trust["Condition"]["StringLike"])
        granted = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
        self.assertEqual([(actions(s), s["Resource"]) for s in granted], [(["kinesis:PutRecord", "kinesis:PutRecords"], {"Fn::GetAtt": ["Stream", "Arn"]})])
        none = deployed()["Resources"]
        self.assertFalse([name for name, r in none.items() if r["Type"] == "AWS::Logs::SubscriptionFilter" or name == "LogsToStreamRole"])
        pattern = re.compile(template_parameter("SubscribedLogGroups")["AllowedPattern"])
        self.assertTrue(pattern.fullmatch(",".join(f"/aws/lambda/app-{n}" for n in range(5))))
        self.assertIsNone(pattern.fullmatch(",".join(f"/aws/lambda/app-{n}" for n in range(6))), "five filters at most")

    def test_cfn_lint_finds_nothing_not_even_informational_notes(self):
        cfn_lint = shutil.which("cfn-lint") or str(pathlib.Path(sys.executable).parent / "cfn-lint")
        result = subprocess.run([cfn_lint, str(TEMPLATE), "--include-checks", "I"], capture_output=True, text=True)
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

    def test_every_variable_is_documented_in_the_configuration_reference(self):
        table_rows = [line for line in CONFIGURATION.read_text().splitlines() if line.startswith("| `")]
        for variable in config_variables():
            documented = any(f"`{variable}`" in row.split(" | ")[0] for row in table_rows)
            self.assertTrue(documented, f"{variable} is missing from docs/configuration.md's table of variables")

    def test_the_repository_listing_names_this_version_and_files_that_exist(self):
        template, _ = decode(str(TEMPLATE))
        listing = template["Metadata"]["AWS::ServerlessRepo::Application"]
        (version,) = re.findall(r'^version = "([^"]+)"$', (ROOT / "Cargo.toml").read_text(), re.M)
        self.assertEqual(listing["SemanticVersion"], version, "SemanticVersion follows Cargo.toml")
        self.assertIn(f"## [{version}]", (ROOT / "CHANGELOG.md").read_text(), "and the changelog says what it holds")
        for file in ["LicenseUrl", "ReadmeUrl"]:
            self.assertTrue((ROOT / listing[file]).is_file(), listing[file])
        self.assertEqual(listing["SpdxLicenseId"], "Apache-2.0")

    def test_allowed_values_are_strings_as_written(self):
        # YAML reads a bare off, no or yes as a boolean: CloudFormation would then refuse the value it was meant to allow.
        template, _ = decode(str(TEMPLATE))
        for name, parameter in template["Parameters"].items():
            for value in parameter.get("AllowedValues", []):
                self.assertNotIsInstance(value, bool, f"{name}: quote {value!r} in template.yaml")

    def test_every_template_parameter_is_documented_with_its_default_and_allowed_values(self):
        template, _ = decode(str(TEMPLATE))
        rows = {}
        for line in CONFIGURATION.read_text().splitlines():
            match = re.match(r"^\| `(\w+)` \| (.*)$", line)
            if match:
                rows[match.group(1)] = match.group(2)
        for name, parameter in template["Parameters"].items():
            self.assertTrue(name in rows, f"{name} is missing from docs/configuration.md: python3 scripts/configuration_table.py")
            default_cell, allowed_cell = rows[name].split(" | ")[:2]
            default = parameter.get("Default")
            expected = "required" if default is None else ("empty" if str(default) == "" else f"`{default}`")
            self.assertEqual(default_cell, expected, f"{name}'s default in docs/configuration.md")
            for value in parameter.get("AllowedValues", []):
                self.assertIn(f"`{value}`", allowed_cell, f"{name}'s allowed value {value!r} in docs/configuration.md")

    def test_a_serverless_collection_grants_api_access_to_it_and_a_domain_none(self):
        collection = "https://abc123xyz.eu-west-1.aoss.amazonaws.com"
        for parameters, granted in [({"EsUrl": collection}, True), ({"EsUrl": "https://h", "EsSigv4Service": "aoss"}, True),
                                    ({"EsUrl": "https://search-logs-abc.eu-west-1.es.amazonaws.com", "DomainArn": DOMAIN}, False)]:
            found = [s for s in statements(deployed(parameters)["Resources"], "FunctionRole") if s.get("Sid") == "UseTheCollection"]
            self.assertEqual(bool(found), granted, parameters)
            if found:
                self.assertEqual(actions(found[0]), ["aoss:APIAccessAll"])
        (grant,) = [s for s in statements(deployed({"EsUrl": collection})["Resources"], "FunctionRole") if s.get("Sid") == "UseTheCollection"]
        template, names = grant["Resource"]["Fn::Sub"]
        self.assertTrue(template.endswith(":collection/${CollectionId}"))

        def value(node):
            if isinstance(node, dict) and "Fn::Select" in node:
                index, items = node["Fn::Select"]
                return value(items)[index]
            if isinstance(node, dict) and "Fn::Split" in node:
                separator, text = node["Fn::Split"]
                return value(text).split(separator)
            return node

        self.assertEqual(value(names["CollectionId"]), "abc123xyz", "the collection's id, from its endpoint")

    def test_the_mapping_can_be_deployed_switched_off_and_a_given_up_batch_raises_an_alarm(self):
        for value in ["true", "false"]:
            mapping = deployed({"EventSourceMappingEnabled": value})["Resources"]["EventSourceMapping"]["Properties"]
            self.assertEqual(mapping["Enabled"], value)
        resources = deployed()["Resources"]
        alarm = resources["FailedBatchesAlarm"]["Properties"]
        self.assertEqual((alarm["Namespace"], alarm["MetricName"]), ("AWS/S3", "PutRequests"))
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        self.assertEqual(dimensions["BucketName"], {"Ref": "FailedBatchesBucket"})
        filters = [m["Id"] for m in resources["FailedBatchesBucket"]["Properties"]["MetricsConfigurations"]]
        self.assertIn(dimensions["FilterId"], filters, "the bucket publishes the metric the alarm reads")

    def test_a_canary_is_put_on_a_schedule_only_when_asked_and_its_absence_alarms(self):
        self.assertFalse({"CanaryRule", "CanaryRole", "CanaryAlarm"} & set(deployed()["Resources"]), "no canary by default")
        resources = deployed({"CanaryIntervalMinutes": 5, "CanaryAlarmMinutes": 20})["Resources"]
        rule = resources["CanaryRule"]["Properties"]
        self.assertEqual(rule["ScheduleExpression"], {"Fn::Sub": "rate(${CanaryIntervalMinutes} minutes)"})
        every_minute = deployed({"CanaryIntervalMinutes": 1})["Resources"]["CanaryRule"]["Properties"]
        self.assertEqual(every_minute["ScheduleExpression"], "rate(1 minute)", "EventBridge refuses rate(1 minutes)")
        template, _ = decode(str(TEMPLATE))
        longest = max(template["Parameters"]["CanaryIntervalMinutes"]["AllowedValues"])
        self.assertGreater(template["Parameters"]["CanaryAlarmMinutes"]["MinValue"], longest, "the alarm's window outlasts any interval")
        (target,) = rule["Targets"]
        self.assertEqual(target["Arn"], {"Fn::GetAtt": ["Stream", "Arn"]}, "into the stream the function reads")
        self.assertEqual(json.loads(target["Input"])["kinesis_es_indexer_canary"], True, "marked as the function reads it")
        (put,) = statements(resources, "CanaryRole")
        self.assertEqual((put["Action"], put["Resource"]), ("kinesis:PutRecord", {"Fn::GetAtt": ["Stream", "Arn"]}))
        alarm = resources["CanaryAlarm"]["Properties"]
        self.assertEqual((alarm["MetricName"], alarm["Statistic"], alarm["TreatMissingData"]), ("CanaryAgeMilliseconds", "SampleCount", "breaching"))
        self.assertEqual(alarm["Period"] * alarm["EvaluationPeriods"], 20 * 60, "no canary for CanaryAlarmMinutes")
        metric = resources["CanaryAgeMetric"]["Properties"]["MetricTransformations"][0]
        self.assertEqual((metric["MetricName"], metric["MetricValue"]), ("CanaryAgeMilliseconds", "$.canary_age_ms"))

    def test_the_function_may_do_only_its_job(self):
        for form, parameters in [("public", {"DomainArn": DOMAIN}), ("vpc", {"DomainArn": DOMAIN, **VPC})]:
            granted = statements(deployed(parameters)["Resources"], "FunctionRole")
            unscoped = {sid for s in granted if s.get("Resource") == "*" for sid in [s["Sid"]]}
            # Only listing streams and, in a VPC, the network interfaces cannot be scoped to resources.
            expected = {"ListStreams"} | ({"NetworkInterfacesInTheVpc"} if form == "vpc" else set())
            self.assertEqual(unscoped, expected, form)
            allowed = {a for s in granted for a in actions(s)}
            self.assertIn("kinesis:GetRecords", allowed)
            self.assertIn("es:ESHttpPost", allowed)
            self.assertNotIn("es:*", allowed)

    def test_a_public_domain_needs_no_vpc_and_a_vpc_domain_gets_one_for_the_function_and_firehose(self):
        public = deployed({"DomainArn": DOMAIN})["Resources"]
        self.assertNotIn("VpcConfig", public["Function"]["Properties"])
        self.assertNotIn("VpcConfiguration", public["DeliveryStream"]["Properties"]["AmazonopensearchserviceDestinationConfiguration"])
        self.assertFalse([a for s in statements(public, "FirehoseRole") for a in actions(s) if a.startswith("ec2:")])

        vpc = deployed({"DomainArn": DOMAIN, **VPC})["Resources"]
        subnets, groups = VPC["VpcSubnetIds"].split(","), [VPC["VpcSecurityGroupIds"]]
        self.assertEqual(vpc["Function"]["Properties"]["VpcConfig"], {"SubnetIds": subnets, "SecurityGroupIds": groups})
        network = vpc["DeliveryStream"]["Properties"]["AmazonopensearchserviceDestinationConfiguration"]["VpcConfiguration"]
        self.assertEqual((network["SubnetIds"], network["SecurityGroupIds"]), (subnets, groups))
        self.assertEqual(network["RoleARN"], {"Fn::GetAtt": ["FirehoseRole", "Arn"]})
        firehose_ec2 = {a for s in statements(vpc, "FirehoseRole") for a in actions(s) if a.startswith("ec2:")}
        self.assertIn("ec2:CreateNetworkInterfacePermission", firehose_ec2)
        function_ec2 = {a for s in statements(vpc, "FunctionRole") for a in actions(s) if a.startswith("ec2:")}
        self.assertTrue({"ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"} <= function_ec2)

    def test_a_stream_key_is_decryptable_only_when_given(self):
        key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        with_key = statements(deployed({"StreamKmsKeyArn": key})["Resources"], "FunctionRole")
        self.assertIn({"Sid": "DecryptTheStream", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": key}, with_key)
        without = statements(deployed()["Resources"], "FunctionRole")
        self.assertFalse([s for s in without if "kms:Decrypt" in actions(s)])

    def test_what_may_hold_unindexed_records_outlives_the_stack(self):
        resources = deployed()["Resources"]
        for name in ["Stream", "FailedBatchesBucket"]:
            self.assertEqual((resources[name]["DeletionPolicy"], resources[name]["UpdateReplacePolicy"]), ("Retain", "Retain"), name)

    def test_one_unindexable_document_does_not_raise_the_firehose_alarm(self):
        alarm = deployed({"DomainArn": DOMAIN})["Resources"]["FirehoseDeliveryAlarm"]["Properties"]
        self.assertEqual((alarm["Statistic"], alarm["DatapointsToAlarm"]), ("Average", 3))
        self.assertLess(alarm["Threshold"], 1)

    def test_a_domain_may_go_without_the_firehose_tier(self):
        resources = deployed({"DomainArn": DOMAIN, "DeliveryStreamName": "none"})["Resources"]
        self.assertFalse({"DeliveryStream", "FirehoseRole"} & set(resources))
        self.assertEqual(resources["Function"]["Properties"]["Environment"]["Variables"]["FIREHOSE_STREAM_NAME"], "")
        self.assertFalse([s for s in statements(resources, "FunctionRole") if "firehose:PutRecordBatch" in actions(s)])
        tier = deployed({"DomainArn": DOMAIN})["Resources"]
        self.assertEqual(tier["Function"]["Properties"]["Environment"]["Variables"]["FIREHOSE_STREAM_NAME"], {"Ref": "DeliveryStream"})
        # make doctor's Firehose check asks, as the function, for the stream it writes to.
        [parks] = [s for s in statements(tier, "FunctionRole") if "firehose:PutRecordBatch" in actions(s)]
        self.assertIn("firehose:DescribeDeliveryStream", actions(parks))

    def test_every_stack_name_the_doctor_and_deploy_tooling_tell_an_operator_to_set_exists(self):
        template, _ = decode(str(TEMPLATE))
        names = set(template["Parameters"]) | set(template["Outputs"])
        # The names a finding or a fix gives: a parameter to set (make deploy SET=…) or an output to read.
        stack_name = r"\b(?:Es|Vpc|Domain|DeliveryStream|EventSourceMapping|Firehose|FunctionRole|Stream|Maximum|Bisect|Parallelization|Starting)[A-Z][A-Za-z]*\b"
        rust_types = {"EsAuth", "FirehoseTemplate", "StreamDescription"} - names
        for source in [*(ROOT / "src" / "doctor").glob("*.rs"), ROOT / "src" / "bin" / "doctor.rs"]:
            told = set(re.findall(stack_name, source.read_text())) - rust_types
            # The event source mapping's own properties, read from Lambda's API, are not stack parameters.
            told -= {"BisectBatchOnFunctionError"}
            self.assertFalse(told - names, f"{source.name} names what the stack does not have")

    def test_the_function_may_read_from_its_domain_only_what_the_doctor_asks(self):
        resources = deployed({"DomainArn": DOMAIN})["Resources"]
        [reads] = [s for s in statements(resources, "FunctionRole") if "es:ESHttpGet" in actions(s)]
        paths = {resource["Fn::Sub"].split("}", 1)[1] for resource in reads["Resource"]}
        # Every GET of src/doctor/, and nothing under an index: no document can be read.
        doctor = "".join(source.read_text() for source in sorted((ROOT / "src" / "doctor").glob("*.rs")))
        asked = set(re.findall(r'Method::Get,\s*(?:&format!\()?"([^"{]+)', doctor))
        who_am_i = re.search(r'const WHO_AM_I: \[&str; \d+\] =\s*\[([^\]]*)\]', doctor).group(1)
        asked |= set(re.findall(r'"([^"]+)"', who_am_i))
        granted = {path.lstrip("/") for path in paths}
        covers = lambda grant, path: path == grant or (grant.endswith("*") and path.startswith(grant[:-1]))
        for path in asked:
            self.assertTrue(any(covers(grant, path) for grant in granted), f"GET {path} is not granted")
        for grant in granted:
            self.assertTrue(any(covers(grant, path) for path in asked), f"{grant} is granted but never asked")

    def test_the_dashboard_is_json_with_or_without_its_optional_widgets(self):
        for parameters, widgets in [({}, 6), ({"DomainArn": DOMAIN}, 7), ({"CanaryIntervalMinutes": "5"}, 7),
                                    ({"DomainArn": DOMAIN, "CanaryIntervalMinutes": "5"}, 8)]:
            with self.subTest(parameters):
                body = deployed(parameters)["Resources"]["OperatorDashboard"]["Properties"]["DashboardBody"]
                joined = body["Fn::Join"][1]
                text = "".join(part if isinstance(part, str) else re.sub(r"\$\{[A-Za-z:]+\}", "x", part["Fn::Sub"]) for part in joined)
                self.assertEqual(len(json.loads(text)["widgets"]), widgets)

    def test_the_dashboard_shows_only_metrics_the_template_defines_or_its_alarms_watch(self):
        # Everything on: a domain (the Firehose widget), a canary (its widget).
        resources = deployed({"DomainArn": DOMAIN, "CanaryIntervalMinutes": "5"})["Resources"]
        names = {"AWS::Region": "eu-west-1", "AWS::StackName": "logs-indexer", "Function": "<Function>",
                 "FailedBatchesBucket": "<FailedBatchesBucket>", "DeliveryStream": "<DeliveryStream>"}

        def text(node):
            if isinstance(node, str):
                return node
            ((function, argument),) = node.items()
            if function == "Fn::Sub":
                return re.sub(r"\$\{([A-Za-z:]+)\}", lambda m: names[m.group(1)], argument)
            if function == "Fn::Join":
                return argument[0].join(text(part) for part in argument[1])
            raise AssertionError(f"{function} in the dashboard's body")

        def reference(node):
            if isinstance(node, dict) and list(node) == ["Ref"]:
                return names[node["Ref"]]
            return text(node) if isinstance(node, dict) else node

        body = json.loads(text(resources["OperatorDashboard"]["Properties"]["DashboardBody"]))
        shown, by_title = set(), {}
        for widget in body["widgets"]:
            namespace = None
            for metric in widget["properties"]["metrics"]:
                plain = [part for part in metric if not isinstance(part, dict)]
                namespace = plain[0] if plain[0] != "." else namespace
                shown.add((namespace, plain[1], tuple(plain[2:])))
                by_title.setdefault(widget["properties"]["title"], set()).add((namespace, plain[1], tuple(plain[2:])))
        runbook = (ROOT / "docs" / "operations.md").read_text()
        named = {m.group(1): m.group(2).strip() for m in re.finditer(r"^\| `(\w+Alarm)` \|.*\| ([^|]+) \|$", runbook, re.M)}
        defined = {(text(t["MetricNamespace"]), t["MetricName"], ())
                   for r in resources.values() if r["Type"] == "AWS::Logs::MetricFilter"
                   for t in r["Properties"]["MetricTransformations"]}
        watched = {(text(a["Properties"]["Namespace"]), a["Properties"]["MetricName"],
                    tuple(v for d in a["Properties"].get("Dimensions", []) for v in (d["Name"], reference(d["Value"]))))
                   for a in resources.values() if a["Type"] == "AWS::CloudWatch::Alarm"}
        self.assertEqual(shown - defined - watched, set())
        self.assertGreaterEqual(len(shown & defined), 15, "the function's metrics are shown")
        for alarm in (a for a in resources.values() if a["Type"] == "AWS::CloudWatch::Alarm"):
            key = (text(alarm["Properties"]["Namespace"]), alarm["Properties"]["MetricName"],
                   tuple(v for d in alarm["Properties"].get("Dimensions", []) for v in (d["Name"], reference(d["Value"]))))
            self.assertIn(key, shown, "every alarm's metric has its widget")
            name = next(n for n, r in resources.items() if r is alarm)
            self.assertIn(key, by_title.get(named.get(name), set()), f"the widget the runbook names for {name} shows its metric")
        self.assertNotIn("OperatorDashboard", deployed({"Dashboard": "disabled"})["Resources"])

    def test_firehose_resources_exist_only_when_asked_for(self):
        template, _ = decode(str(TEMPLATE))
        conditions = template["Conditions"]
        self.assertEqual(template["Resources"]["DeliveryStream"]["Condition"], "CreateDeliveryStream")
        self.assertIn("CreateDeliveryStream", conditions)
        self.assertEqual(template["Resources"]["Stream"]["Condition"], "CreateStream")


if __name__ == "__main__":
    unittest.main()
