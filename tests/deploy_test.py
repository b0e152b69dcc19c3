"""`make deploy` (scripts/deploy.py): a first deploy asks only what its kind of deployment needs, never a hidden
credential its authentication does not use, and saves the answers; a redeploy asks nothing, changes nothing, and no
command-line override replaces the saved answers (SAM CLI issue #2380). Run with `--print-commands`: the answers
are saved and the sam commands printed, nothing is deployed.

    python3 -m unittest discover -s tests -p '*_test.py'
"""
import io
import pathlib
import re
import subprocess
import sys
import tempfile
import unittest

import tomlkit
from cfnlint.decode import decode

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import deploy  # noqa: E402

# The bound: a first deploy for a public domain asks at most this many questions, confirmation included.
MOST_QUESTIONS = 10
URL = "https://search-logs-abc123def456.eu-west-1.es.amazonaws.com"
DOMAIN = "arn:aws:es:eu-west-1:123456789012:domain/logs"
STREAM = "arn:aws:kinesis:eu-west-1:123456789012:stream/app-logs"
SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:cluster-AbCdEf"

# Each deployment's answers, in the order a new operator gives them: an empty line takes the offered default.
ANSWERS = {
    "public": ["logs-indexer", "public", URL, DOMAIN, "", "", "", "y"],
    "public, an existing stream": ["logs-indexer", "public", URL, DOMAIN, STREAM, "TRIM_HORIZON", "/aws/lambda/checkout", "", "y"],
    "public, a custom endpoint": ["logs-indexer", "public", "https://logs.example.com", "eu-west-1", DOMAIN, "", "", "", "y"],
    "vpc": ["logs-indexer", "vpc", URL.replace("search-", "vpc-"), DOMAIN, "subnet-0a1b2c3d,subnet-4e5f6a7b", "sg-0123456789abcdef0", "", "", "", "y"],
    "serverless": ["logs-indexer", "serverless", "https://abc123xyz.eu-west-1.aoss.amazonaws.com", "TIMESERIES", "", "", "", "", "y"],
    "serverless, in a VPC, an existing stream": ["logs-indexer", "serverless", "https://abc123xyz.eu-west-1.aoss.amazonaws.com", "TIMESERIES", "subnet-0a1b2c3d,subnet-4e5f6a7b", "sg-0123456789abcdef0", STREAM, "", "", "", "y"],
    "self-managed, secret": ["logs-indexer", "self-managed", "https://es.example.com:9200", "eu-west-1", "secret", SECRET, "", "", "", "", "y"],
    "self-managed, basic": ["logs-indexer", "self-managed", "https://es.example.com:9200", "eu-west-1", "basic", "indexer", "s3cret-pa55", "", "", "", "", "y"],
    "self-managed, api-key": ["logs-indexer", "self-managed", "https://es.example.com:9200", "eu-west-1", "api-key", "aWQ6a2V5", "", "", "", "", "y"],
    "self-managed, none": ["logs-indexer", "self-managed", "http://10.0.0.5:9200", "eu-west-1", "none", "", "", "", "", "y"],
}


def run(config, answers=None, *arguments):
    """The script as `make deploy` runs it, answers on standard input (none: closed), saving to `config`."""
    return subprocess.run(
        [sys.executable, "scripts/deploy.py", "deploy", "--print-commands", "--config-file", str(config), *arguments],
        cwd=ROOT, input="".join(a + "\n" for a in answers) if answers is not None else "", capture_output=True, text=True,
    )


def prompts(stdout):
    return re.findall(r"\? ([^\[:\n]+)", stdout)


def deploy_commands(stdout):
    return [line for line in stdout.splitlines() if line.startswith("would run:") and " sam deploy " in f" {line} "]


def saved(config):
    """The saved answers, as the SAM CLI reads them back."""
    from samcli.cli.types import CfnParameterOverridesType

    section = tomlkit.parse(config.read_text())["default"]["deploy"]["parameters"]
    return CfnParameterOverridesType().convert(str(section["parameter_overrides"]), None, None)


class FirstDeployTest(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.TemporaryDirectory()
        self.config = pathlib.Path(self.directory.name) / "samconfig.toml"

    def tearDown(self):
        self.directory.cleanup()

    def test_a_public_domain_is_deployed_after_at_most_ten_questions_and_one_answer_less_is_not_enough(self):
        answers = ANSWERS["public"]
        self.assertLessEqual(len(answers), MOST_QUESTIONS)
        finished = run(self.config, answers)
        self.assertEqual(finished.returncode, 0, finished.stdout + finished.stderr)
        self.assertEqual(len(prompts(finished.stdout)), len(answers))
        short = run(pathlib.Path(self.directory.name) / "other.toml", answers[:-1])
        self.assertNotEqual(short.returncode, 0)
        self.assertIn("standard input is closed", short.stderr)
        values = saved(self.config)
        self.assertEqual((values["EsUrl"], values["DomainArn"], values["EventSourceMappingEnabled"]), (URL, DOMAIN, "false"))
        # The stream the stack makes is read from its first record once the mapping is on: nothing written before
        # (or while the mapping is updated) is skipped.
        self.assertEqual(values["StartingPosition"], "TRIM_HORIZON")
        # sam logs and sam remote invoke read the global section: the stack's region is there, as the endpoint names it.
        self.assertEqual(tomlkit.parse(self.config.read_text())["default"]["global"]["parameters"]["region"], "eu-west-1")
        # The defaults it did not ask about work for this deployment: a new stack takes the template's.
        template, _ = decode(str(ROOT / "template.yaml"))
        unanswered = set(template["Parameters"]) - set(values)
        self.assertEqual({name for name in unanswered if "Default" not in template["Parameters"][name]}, set())

    def test_every_kind_of_deployment_finishes_with_its_answers_and_saves_no_typed_credential(self):
        for kind, answers in ANSWERS.items():
            with self.subTest(kind):
                config = pathlib.Path(self.directory.name) / f"{kind.replace(' ', '_').replace(',', '')}.toml"
                finished = run(config, answers)
                self.assertEqual(finished.returncode, 0, finished.stdout + finished.stderr)
                text = config.read_text()
                for credential in ("s3cret-pa55", "aWQ6a2V5"):
                    self.assertNotIn(credential, text)
                self.assertFalse((ROOT / ".aws-sam" / "samconfig-with-credential.toml").exists(), "the private copy is removed")
                (command,) = deploy_commands(finished.stdout)
                typed = {"self-managed, basic": "EsPassword", "self-managed, api-key": "EsApiKey"}.get(kind)
                for credential in ("EsPassword", "EsApiKey"):
                    # A typed credential is left out, so that a redeploy keeps the stack's (UsePreviousValue); any
                    # other is saved empty, so that switching authentication clears it.
                    self.assertEqual(saved(config).get(credential), None if credential == typed else "", credential)
                if typed:
                    self.assertIn("samconfig-with-credential.toml", command, "the typed credential reaches this deploy")
                else:
                    self.assertIn(str(config), command)

    def test_a_hidden_parameter_is_asked_only_for_the_authentication_that_uses_it(self):
        template, _ = decode(str(ROOT / "template.yaml"))
        hidden = {name for name, declared in template["Parameters"].items() if declared.get("NoEcho")}
        self.assertEqual(hidden, {"EsPassword", "EsApiKey"}, "a new NoEcho parameter needs its place in the questions")
        uses = {"self-managed, basic": {"EsPassword"}, "self-managed, api-key": {"EsApiKey"}}
        for kind, answers in ANSWERS.items():
            with self.subTest(kind):
                questions = deploy.Questions(io.StringIO("".join(a + "\n" for a in answers[:-1])), io.StringIO())
                deploy.ask_first_deploy(questions, deploy.template_parameters(), {}, offline=True)
                asked = {parameter for parameter, _, _ in questions.asked if parameter}
                self.assertEqual(asked & hidden, uses.get(kind, set()))
                secret_prompts = [text for parameter, text, concealed in questions.asked if concealed]
                self.assertEqual(len(secret_prompts), len(uses.get(kind, set())), "only a credential's prompt hides its input")

    def test_a_first_deploy_with_basic_authentication_needs_the_password(self):
        answers = list(ANSWERS["self-managed, basic"])
        answers.insert(6, "")  # an empty password first: explained, asked again
        finished = run(self.config, answers)
        self.assertEqual(finished.returncode, 0, finished.stdout + finished.stderr)
        self.assertIn("needed on a first deploy", finished.stdout)

    def test_a_parameter_the_template_cannot_default_is_asked(self):
        parameters = {**deploy.template_parameters(), "ClusterOwner": {"Type": "String", "Description": "who owns it"}}
        questions = deploy.Questions(io.StringIO("".join(a + "\n" for a in ANSWERS["public"][:-1] + ["platform-team"])), io.StringIO())
        answers, _, _, _ = deploy.ask_first_deploy(questions, parameters, {}, offline=True)
        self.assertEqual(answers["ClusterOwner"], "platform-team")
        self.assertGreater(len(questions.asked), len(ANSWERS["public"]) - 1)

    def test_a_wrong_answer_is_explained_and_asked_again(self):
        answers = ANSWERS["public"][:2] + ["ftp://logs.example.com"] + ANSWERS["public"][2:]
        finished = run(self.config, answers)
        self.assertEqual(finished.returncode, 0, finished.stderr)
        self.assertIn("an http:// or https:// URL", finished.stdout)

    def test_the_stack_s_own_log_group_cannot_be_subscribed_to_its_stream(self):
        answers = ANSWERS["public, an existing stream"]
        own = "/aws/lambda/checkout,/aws/lambda/logs-indexer-indexer"
        finished = run(self.config, answers[:6] + [own, "/aws/lambda/checkout"] + answers[7:])
        self.assertEqual(finished.returncode, 0, finished.stdout + finished.stderr)
        self.assertIn("this stack's own log group", finished.stdout)
        self.assertEqual(saved(self.config)["SubscribedLogGroups"], "/aws/lambda/checkout")


class RedeployTest(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.TemporaryDirectory()
        self.config = pathlib.Path(self.directory.name) / "samconfig.toml"
        first = run(self.config, ANSWERS["vpc"])
        self.assertEqual(first.returncode, 0, first.stderr)

    def tearDown(self):
        self.directory.cleanup()

    def test_a_redeploy_asks_nothing_changes_nothing_and_overrides_nothing(self):
        before = self.config.read_text()
        again = run(self.config)  # standard input closed: any question would fail it
        self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
        self.assertEqual(prompts(again.stdout), [])
        self.assertEqual(self.config.read_text(), before)
        (command,) = deploy_commands(again.stdout)
        self.assertNotIn("--parameter-overrides", command)
        self.assertNotIn("--guided", command)
        self.assertIn("--config-file", command)

    def test_the_architecture_and_the_saved_answers_never_replace_each_other(self):
        answers = saved(self.config)
        switched = run(self.config, None, "--architecture", "arm64")
        self.assertEqual(switched.returncode, 0, switched.stderr)
        self.assertEqual(saved(self.config), {**answers, "Architecture": "arm64"})
        self.assertIn("Architecture=arm64", next(line for line in switched.stdout.splitlines() if " sam build " in line))
        # Without ARCH the saved architecture holds, and builds that one.
        again = run(self.config)
        self.assertEqual(saved(self.config)["Architecture"], "arm64")
        self.assertIn("Architecture=arm64", next(line for line in again.stdout.splitlines() if " sam build " in line))

    def test_set_changes_one_answer_and_keeps_the_rest(self):
        answers = saved(self.config)
        started = run(self.config, None, "--set", "EventSourceMappingEnabled=true")
        self.assertEqual(started.returncode, 0, started.stderr)
        self.assertEqual(saved(self.config), {**answers, "EventSourceMappingEnabled": "true"})
        refused = run(self.config, None, "--set", "EventSourceMappingEnabled=yes")
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("EventSourceMappingEnabled takes one of", refused.stderr)

    def test_reconfigure_offers_the_saved_answers(self):
        answers = saved(self.config)
        again = run(self.config, [""] * 9 + ["y"], "--reconfigure")
        self.assertEqual(again.returncode, 0, again.stdout + again.stderr)
        self.assertEqual(saved(self.config), answers)


class SetUpTest(unittest.TestCase):
    def test_a_python_without_venv_is_named_with_the_package_to_install_and_leaves_nothing_half_made(self):
        # Debian's and Ubuntu's python3 without python3-venv: `python3 -m venv` fails after making part of the tree.
        with tempfile.TemporaryDirectory() as directory:
            place = pathlib.Path(directory)
            (place / "bin").mkdir()
            fake = place / "bin" / "python3"
            fake.write_text('#!/bin/sh\nif [ "$1" = -m ] && [ "$2" = venv ]; then mkdir -p "$3/bin"; touch "$3/bin/python3"; '
                            'echo "The virtual environment was not created successfully because ensurepip is not available." >&2; exit 1; fi\n'
                            'exec /usr/bin/env -i false\n')
            fake.chmod(0o755)
            project = place / "project"
            (project / "deploy" / "requirements").mkdir(parents=True)
            (project / "Makefile").write_text((ROOT / "Makefile").read_text())
            for requirements in (ROOT / "deploy" / "requirements").glob("*.txt"):
                (project / "deploy" / "requirements" / requirements.name).write_text(requirements.read_text())
            made = subprocess.run(["make", "--no-print-directory", ".venv/.installed-run"], cwd=project, capture_output=True, text=True,
                                  env={"PATH": f"{place / 'bin'}:/usr/bin:/bin", "HOME": directory})
            self.assertNotEqual(made.returncode, 0)
            self.assertIn("sudo apt-get install python3-venv", made.stderr)
            self.assertFalse((project / ".venv").exists(), "a half-made .venv would pass for a made one next time")


class MakefileTest(unittest.TestCase):
    def test_make_deploy_passes_no_parameter_override_to_sam(self):
        makefile = (ROOT / "Makefile").read_text()
        recipe = makefile.split("\ndeploy:", 1)[1].split("\n\n", 1)[0]
        self.assertIn("scripts/deploy.py deploy", recipe)
        for replacing in ("--parameter-overrides", "--guided", "sam deploy"):
            self.assertNotIn(replacing, recipe)

    def test_saved_answers_parse_back_as_the_sam_cli_reads_them(self):
        values = {"FilterInclude": 'level"\\s*:\\s*"(error|warn)', "VpcSubnetIds": "subnet-a,subnet-b", "EsAuth": ""}
        self.assertEqual(deploy.parse_overrides(deploy.overrides_text(values)), values)


if __name__ == "__main__":
    unittest.main()
