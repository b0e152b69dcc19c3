#!/usr/bin/env python3
"""`make deploy`, `make build`, `make package`: builds the function for one architecture with cargo-lambda and
deploys it with the SAM CLI, asking a first deploy only what its kind of deployment needs and saving the answers in
samconfig.toml, so that a redeploy asks nothing.

Why not `sam deploy --guided`: it asks every parameter of the template (over 60) on every run, asks a `NoEcho`
parameter again each time and refuses an empty answer to it, and a `--parameter-overrides` on its command line
replaces every answer saved in samconfig.toml (SAM CLI issue #2380). Here the answers are written to samconfig.toml
with the architecture among them, and `sam deploy` runs with that file and no override on its command line; a
parameter the answers leave out keeps its value in the deployed stack (SAM submits it as `UsePreviousValue`) or its
template default in a new one. A password or API key typed here is never written to disk: it reaches CloudFormation
once, in a private copy of the file removed after the deploy, and later deploys keep it the same way.

    python3 scripts/deploy.py deploy [--architecture A] [--reconfigure] [--set NAME=VALUE …] [--config-env ENV]
                                     [--print-commands]
    python3 scripts/deploy.py build [--architecture A]
    python3 scripts/deploy.py package --bucket BUCKET [--architecture A]

`--print-commands` saves the answers and prints the commands instead of running them.
"""
import argparse
import getpass
import os
import pathlib
import platform
import re
import shlex
import shutil
import subprocess
import sys

import tomlkit
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
CONFIG = ROOT / "samconfig.toml"
BUILT_BINARY = ROOT / ".aws-sam" / "build" / "Function" / "bootstrap"
CARGO_LAMBDA_BINARY = ROOT / "target" / "lambda" / "bootstrap" / "bootstrap"
DEFAULT_STACK = "logs-indexer"

# The kinds of deployment a first deploy offers, each with the questions it needs (see ask_first_deploy).
SCENARIOS = {
    "public": "an Amazon OpenSearch Service domain with a public endpoint",
    "vpc": "an Amazon OpenSearch Service domain in a VPC",
    "serverless": "an OpenSearch Serverless collection",
    "self-managed": "a self-managed Elasticsearch or OpenSearch cluster (Elastic Cloud, EC2, on premises)",
}
# How a self-managed cluster authenticates; only the chosen one's credentials are asked for.
AUTH_MODES = {
    "secret": "a Secrets Manager secret holding {\"username\",\"password\"} or {\"api_key\"} (recommended)",
    "basic": "a username and a password, typed here (kept in the stack, never on disk)",
    "api-key": "an API key, typed here (kept in the stack, never on disk)",
    "none": "no authentication",
}
SECRET_PARAMETERS = {"basic": "EsPassword", "api-key": "EsApiKey"}
ENDPOINT_HOST = re.compile(r"^https://(?:(search|vpc)-(.+)-[a-z0-9]+\.([a-z0-9-]+)\.es\.amazonaws\.com|([a-z0-9]+)\.([a-z0-9-]+)\.aoss\.amazonaws\.com)(?::443)?/?$")


def fail(message):
    sys.exit(f"deploy: {message}")


def template_parameters():
    """The template's parameters (name → its declaration), read with CloudFormation's short tags ignored."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load(TEMPLATE.read_text(), Loader=Loader)["Parameters"]


def parameter_problem(parameters, name, value):
    """Why the template would refuse this value for the parameter, or None."""
    declared = parameters.get(name)
    if declared is None:
        return f"{name} is not a parameter of template.yaml"
    allowed = declared.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        return f"{name} takes one of {', '.join(str(v) for v in allowed)}"
    pattern = declared.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        return f"{name}: {declared.get('ConstraintDescription') or 'must match ' + pattern}"
    if declared.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            return f"{name} is a number"
        if "MinValue" in declared and number < float(declared["MinValue"]):
            return f"{name} is at least {declared['MinValue']}"
        if "MaxValue" in declared and number > float(declared["MaxValue"]):
            return f"{name} is at most {declared['MaxValue']}"
    return None


class Questions:
    """Asks on standard output and reads the answers from standard input (typed, or piped in), counting them."""

    def __init__(self, read=sys.stdin, write=sys.stdout):
        self.read, self.write, self.asked = read, write, []

    def ask(self, text, default="", check=None, hidden=False, parameter=None):
        """The answer (or the default, on an empty line), asked again with the reason while `check` refuses it;
        `parameter` names the template parameter it sets, `hidden` hides what is typed on a terminal."""
        shown = f" [{default}]" if default else ""
        while True:
            prompt = f"? {text}{shown}: "
            if hidden and self.read.isatty():
                line = getpass.getpass(prompt) + "\n"
            else:
                self.write.write(prompt)
                self.write.flush()
                line = self.read.readline()
            if line == "":
                fail(f"no answer to '{text}' (standard input is closed)")
            answer = line.strip() or default
            problem = check(answer) if check else None
            if problem is None:
                self.asked.append((parameter, text, hidden))
                return answer
            self.write.write(f"  {problem}\n")

    def choose(self, text, choices, default):
        listing = "".join(f"\n    {name}: {meaning}" for name, meaning in choices.items())
        return self.ask(f"{text}{listing}\n  ", default, lambda a: None if a in choices else f"one of {', '.join(choices)}")


def endpoint_parts(url):
    """(domain name, region) of an OpenSearch Service endpoint, (collection id, region) of a Serverless one."""
    match = ENDPOINT_HOST.match(url)
    if not match:
        return None, None
    if match.group(2):
        return match.group(2), match.group(3)
    return match.group(4), match.group(5)


def configured_region():
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(variable):
            return os.environ[variable]
    try:
        import botocore.session

        return botocore.session.get_session().get_config_variable("region") or ""
    except Exception:  # noqa: BLE001  (no botocore or an unreadable profile: no default to offer)
        return ""


def account_id(region, offline):
    """The caller's account, to offer the domain's ARN as a default; empty when it cannot be known quickly."""
    if offline:
        return ""
    try:
        import boto3
        from botocore.config import Config

        config = Config(connect_timeout=3, read_timeout=3, retries={"max_attempts": 1})
        return boto3.client("sts", region_name=region or None, config=config).get_caller_identity()["Account"]
    except Exception:  # noqa: BLE001  (no credentials or no network: the question has no default)
        return ""


def list_problem(value, prefix, what):
    items = [item.strip() for item in value.split(",") if item.strip()]
    wrong = [item for item in items if not item.startswith(prefix)]
    return f"{', '.join(wrong)}: not {what} ({prefix}…)" if wrong else None


def log_groups_problem(stack, value):
    names = [name.strip() for name in value.split(",") if name.strip()]
    own = {f"/aws/lambda/{stack}-indexer", f"/aws/kinesisfirehose/{stack}-retry-later"}
    looping = [name for name in names if name in own]
    if looping:
        return f"{', '.join(looping)} is this stack's own log group: its lines would feed the stream they report on"
    return None


def scenario_of(saved):
    if saved.get("DomainArn"):
        return "vpc" if saved.get("VpcSubnetIds") else "public"
    if ".aoss.amazonaws.com" in saved.get("EsUrl", ""):
        return "serverless"
    return "self-managed" if saved.get("EsUrl") else "public"


def ask_first_deploy(questions, parameters, saved, offline):
    """The answers of a first deploy (or of --reconfigure, offering the saved ones): parameter overrides, stack name,
    region, and a credential that must not be saved (a name and a value, or None)."""
    answers, secret = {}, None

    def parameter(name, text, default=None, extra=None):
        offered = saved.get(name, default if default is not None else str(parameters[name].get("Default", "")))

        def check(value):
            if value == "" and "Default" not in parameters[name]:
                return f"{name} has no default: an answer is needed"
            problem = parameter_problem(parameters, name, value)
            return problem or (extra(value) if extra else None)

        answers[name] = questions.ask(text, offered, check, parameter=name)
        return answers[name]

    stack = questions.ask("Stack name", saved.get("stack_name", DEFAULT_STACK),
                          lambda s: None if re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,100}", s) else "letters, digits and hyphens, starting with a letter")
    scenario = questions.choose("Where do the documents go?", SCENARIOS, scenario_of(saved))
    # A domain may be reached through its custom endpoint; a collection only through its own (SigV4 for aoss).
    url = parameter("EsUrl", "The cluster's endpoint URL (https://…)",
                    extra=lambda u: None if scenario != "serverless" or ".aoss.amazonaws.com" in u
                    else "a Serverless collection's endpoint: https://<id>.<region>.aoss.amazonaws.com")
    name, region = endpoint_parts(url)
    if not region:
        region = questions.ask("AWS region to deploy to", saved.get("region") or configured_region(),
                               lambda r: None if re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]", r) else "a region name, like eu-west-1")
    if scenario in ("public", "vpc"):
        account = account_id(region, offline)
        guess = f"arn:aws:es:{region}:{account}:domain/{name}" if account and name else ""
        parameter("DomainArn", "The domain's ARN (the cold start checks that the endpoint is this domain)", guess,
                  extra=lambda a: None if a else "a domain needs its ARN: it grants the roles and creates the Firehose tier")
    else:
        answers["DomainArn"] = ""
    if scenario == "serverless":
        kind = questions.ask("The collection's type (TIMESERIES or SEARCH)", "TIMESERIES" if saved.get("EsDocId", "none") == "none" else "SEARCH",
                             lambda k: None if k.upper() in ("TIMESERIES", "SEARCH") else "TIMESERIES or SEARCH")
        # TIMESERIES collections refuse a client _id; SEARCH collections take one (exactly once).
        answers["EsDocId"] = "none" if kind.upper() == "TIMESERIES" else "kinesis"
    if scenario == "self-managed":
        mode = questions.choose("How does the cluster authenticate?", AUTH_MODES, saved_auth_mode(saved))
        answers.update(EsAuth="", EsSecretArn="", EsUsername="", EsPassword="", EsApiKey="")
        if mode == "secret":
            parameter("EsSecretArn", "The secret's ARN", extra=lambda a: None if a else "the secret's ARN is needed")
        elif mode == "basic":
            answers["EsAuth"] = "basic"
            parameter("EsUsername", "Username", extra=lambda u: None if u else "basic authentication needs a username")
        elif mode == "api-key":
            answers["EsAuth"] = "api-key"
        else:
            answers["EsAuth"] = "none"
        if mode in SECRET_PARAMETERS:
            secret_name = SECRET_PARAMETERS[mode]
            # Not saved: an empty answer on a redeploy keeps the stack's current one.
            del answers[secret_name]
            # A first deploy needs it; on a later one, an empty answer keeps the stack's.
            needed = None if saved.get("stack_name") else (lambda v: None if v else "needed on a first deploy; typed, not saved")
            value = questions.ask("Password" if mode == "basic" else "API key (base64 of id:key)", "", needed, hidden=True, parameter=secret_name)
            secret = (secret_name, value) if value else None
    elif scenario in ("public", "vpc", "serverless"):
        # SigV4 with the function's role; credentials from an earlier answer would stop the cold start.
        answers.update(EsAuth="", EsSecretArn="", EsUsername="", EsPassword="", EsApiKey="")
    if scenario in ("vpc", "serverless", "self-managed"):
        optional = scenario != "vpc"
        subnets = parameter("VpcSubnetIds", "Private subnets that reach the cluster, comma-separated" + (" (empty: outside any VPC)" if optional else ""),
                            extra=lambda s: (None if optional else "a domain in a VPC needs two subnets that reach it") if not s else list_problem(s, "subnet-", "subnet ids"))
        if subnets:
            parameter("VpcSecurityGroupIds", "Security groups for the function, comma-separated (the cluster's group must admit them on 443)",
                      extra=lambda s: list_problem(s, "sg-", "security group ids") if s else "subnets need a security group")
        else:
            answers["VpcSecurityGroupIds"] = ""
    else:
        answers.update(VpcSubnetIds="", VpcSecurityGroupIds="")
    stream = parameter("StreamArn", "The Kinesis stream's ARN (empty: the stack creates one)")
    if stream:
        parameter("StartingPosition", "Where to start reading it: TRIM_HORIZON (every record it keeps) or LATEST (from now on)", "TRIM_HORIZON")
    else:
        # A stream made with the stack holds only what was written since: read all of it when the mapping is switched
        # on, so that the records written before (and during the mapping's update) are not skipped as LATEST would.
        answers["StartingPosition"] = "TRIM_HORIZON"
    parameter("SubscribedLogGroups", "CloudWatch Logs groups to subscribe to the stream, comma-separated (empty: none)",
              extra=lambda groups: log_groups_problem(stack, groups))
    parameter("AlarmTopicArn", "An SNS topic's ARN for the alarms (empty: alarms without notifications)")
    # Anything else the template cannot default: asked as it stands.
    for other, declared in parameters.items():
        if "Default" not in declared and other not in answers:
            parameter(other, f"{other}: {declared.get('Description', '')}")
    return answers, stack, region, secret


def saved_auth_mode(saved):
    if saved.get("EsSecretArn"):
        return "secret"
    return {"basic": "basic", "api-key": "api-key", "none": "none"}.get(saved.get("EsAuth", ""), "secret")


def quote(value):
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def overrides_text(overrides):
    return " ".join(f"{name}={quote(value)}" for name, value in overrides.items())


def parse_overrides(text):
    """samconfig.toml's parameter_overrides (`Name="value" …`, or a list of `Name=value`), as written above."""
    if isinstance(text, list):
        pairs = [str(item).split("=", 1) for item in text]
        return {name: value for name, value in pairs}
    found = re.findall(r'([A-Za-z0-9]+)=(?:"((?:\\.|[^"\\])*)"|(\S*))', str(text))
    return {name: re.sub(r"\\(.)", r"\1", quoted) if quoted or not bare else bare for name, quoted, bare in found}


def load_config(path, env):
    if not path.exists():
        return tomlkit.document(), None
    document = tomlkit.parse(path.read_text())
    section = document.get(env, {}).get("deploy", {}).get("parameters")
    return document, section


def save_config(path, document, env, stack, region, overrides):
    if not document.get(env):
        document.add(env, tomlkit.table(True))
    if "deploy" not in document[env]:
        document[env].add("deploy", tomlkit.table(True))
    section = document[env]["deploy"].get("parameters")
    if section is None:
        section = tomlkit.table()
        document[env]["deploy"]["parameters"] = section
    section["stack_name"] = stack
    section["region"] = region
    section["s3_prefix"] = stack
    section["resolve_s3"] = True
    section["capabilities"] = "CAPABILITY_IAM"
    # The first deploy showed its answers before saving them; a redeploy runs unattended and an unchanged stack is
    # not an error.
    section["confirm_changeset"] = False
    section["fail_on_empty_changeset"] = False
    section["parameter_overrides"] = overrides_text(overrides)
    # Every SAM command (sam logs, sam remote invoke, sam list) reads the global section: the stack's region there
    # keeps them from looking in another one.
    if "global" not in document[env]:
        document[env].add("global", tomlkit.table(True))
    if document[env]["global"].get("parameters") is None:
        document[env]["global"]["parameters"] = tomlkit.table()
    document[env]["global"]["parameters"]["region"] = region
    if not document.get("version"):
        document["version"] = 0.1
    text = tomlkit.dumps(document)
    if not text.startswith("#"):
        text = ("# Written by `make deploy` (scripts/deploy.py): the answers of this stack's deploys, used by every later\n"
                "# `make deploy` and by a plain `sam deploy`. `make deploy RECONFIGURE=1` asks again; `make deploy SET=\"Name=value\"`\n"
                "# changes one answer. Passwords and API keys typed at a deploy are not kept here.\n") + text
    path.write_text(text)


def cargo_lambda_compiler(architecture):
    """Plain cargo on Linux for the machine's own architecture; anywhere else cargo-zigbuild, with the zig that
    cargo-lambda's pip package brings (macOS, or arm64 on Linux x86_64)."""
    machine = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine().lower())
    return "cargo" if platform.system() == "Linux" and machine == architecture else "cargo-zigbuild"


def rust_target(architecture):
    return ("aarch64" if architecture == "arm64" else "x86_64") + "-unknown-linux-gnu"


class Runner:
    def __init__(self, print_only):
        self.print_only = print_only

    def run(self, command, env=None):
        shown = " ".join(shlex.quote(str(part)) for part in command)
        if self.print_only:
            prefix = " ".join(f"{k}={v}" for k, v in (env or {}).items())
            print(f"would run: {prefix + ' ' if prefix else ''}{shown}")
            return
        print(f"+ {shown}", flush=True)
        result = subprocess.run([str(part) for part in command], cwd=ROOT, env={**os.environ, **(env or {})})
        if result.returncode != 0:
            fail(f"`{shown}` failed with exit status {result.returncode}")


def prepare_rust_target(runner, architecture):
    target = rust_target(architecture)
    if runner.print_only or cargo_lambda_compiler(architecture) == "cargo":
        return
    listed = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True, text=True) if shutil.which("rustup") else None
    if listed is None:
        fail(f"building for {architecture} here needs the Rust target {target}: install rustup, or add the target to your toolchain")
    if target not in listed.stdout.split():
        runner.run(["rustup", "target", "add", target])


def check_binary(runner, binary, architecture):
    runner.run([sys.executable, "scripts/check_architecture.py", binary.relative_to(ROOT), architecture])
    if cargo_lambda_compiler(architecture) == "cargo":
        # Linked against this machine's glibc: it must not be newer than Amazon Linux 2023's.
        runner.run([sys.executable, "scripts/check_glibc.py", binary.relative_to(ROOT)])


def sam_build(runner, architecture):
    prepare_rust_target(runner, architecture)
    runner.run(["sam", "build", "--beta-features", "--parameter-overrides", f"Architecture={architecture}"],
               env={"CARGO_LAMBDA_COMPILER": cargo_lambda_compiler(architecture)})
    check_binary(runner, BUILT_BINARY, architecture)


def build(arguments):
    runner = Runner(arguments.print_commands)
    prepare_rust_target(runner, arguments.architecture)
    flag = "--arm64" if arguments.architecture == "arm64" else "--x86-64"
    runner.run(["cargo", "lambda", "build", "--release", "--bin", "bootstrap", flag],
               env={"CARGO_LAMBDA_COMPILER": cargo_lambda_compiler(arguments.architecture)})
    check_binary(runner, CARGO_LAMBDA_BINARY, arguments.architecture)


def apply_settings(parameters, overrides, settings):
    for setting in settings:
        name, equals, value = setting.partition("=")
        if not equals:
            fail(f"--set {setting}: write NAME=VALUE")
        problem = parameter_problem(parameters, name, value)
        if problem:
            fail(f"--set {setting}: {problem}")
        overrides[name] = value


def deploy(arguments):
    parameters = template_parameters()
    config = pathlib.Path(arguments.config_file).resolve()
    document, section = load_config(config, arguments.config_env)
    saved = parse_overrides(section.get("parameter_overrides", "")) if section else {}
    first = section is None
    secret = None
    if first or arguments.reconfigure:
        offered = {**saved, **({"stack_name": section["stack_name"], "region": section.get("region", "")} if section else {})}
        questions = Questions()
        overrides, stack, region, secret = ask_first_deploy(questions, parameters, offered, arguments.print_commands)
        if first:
            # Nothing is read before the roles may write and the pipeline is installed: the next steps say when.
            overrides["EventSourceMappingEnabled"] = "false"
        elif "EventSourceMappingEnabled" in saved:
            overrides["EventSourceMappingEnabled"] = saved["EventSourceMappingEnabled"]
        overrides["Architecture"] = arguments.architecture or saved.get("Architecture") or str(parameters["Architecture"]["Default"])
        apply_settings(parameters, overrides, arguments.set)
        print("\nThe answers, saved in samconfig.toml:")
        for name, value in overrides.items():
            print(f"  {name} = {value}")
        if secret:
            print(f"  {secret[0]} = (typed; not saved)")
        go = questions.ask("Deploy now? (y/n)", "y", lambda a: None if a.lower() in ("y", "n", "yes", "no") else "y or n")
        save_config(config, document, arguments.config_env, stack, region, overrides)
        print(f"Asked {len(questions.asked)} questions.")
        if go.lower().startswith("n"):
            print("Saved; `make deploy` deploys them.")
            return
    else:
        stack, region = section["stack_name"], section.get("region", "")
        overrides = dict(saved)
        before = dict(overrides)
        if arguments.architecture and overrides.get("Architecture") != arguments.architecture:
            print(f"Architecture: {overrides.get('Architecture', parameters['Architecture']['Default'])} → {arguments.architecture} (saved)")
            overrides["Architecture"] = arguments.architecture
        apply_settings(parameters, overrides, arguments.set)
        if overrides != before:
            save_config(config, document, arguments.config_env, stack, region, overrides)
    architecture = overrides.get("Architecture") or str(parameters["Architecture"]["Default"])
    runner = Runner(arguments.print_commands)
    sam_build(runner, architecture)
    deploy_config = config
    if secret:
        # A private copy holding the typed credential for this one deploy; the stack keeps it afterwards.
        private = ROOT / ".aws-sam" / "samconfig-with-credential.toml"
        private.parent.mkdir(exist_ok=True)
        copy = tomlkit.parse(config.read_text())
        copy[arguments.config_env]["deploy"]["parameters"]["parameter_overrides"] = overrides_text({**overrides, secret[0]: secret[1]})
        private.touch(mode=0o600)
        private.chmod(0o600)
        private.write_text(tomlkit.dumps(copy))
        deploy_config = private
    try:
        runner.run(["sam", "deploy", "--config-file", deploy_config, "--config-env", arguments.config_env])
    finally:
        if deploy_config != config:
            deploy_config.unlink(missing_ok=True)
    if first and not arguments.print_commands:
        next_steps(stack, region, overrides)


def next_steps(stack, region, overrides):
    """What is left before the first document, for this kind of deployment (docs/deploy.md has each in full)."""
    url = overrides.get("EsUrl", "")
    steps = [f"""Read the stack's outputs (FunctionRoleArn, FirehoseRoleArn, StreamArn):
       .venv/bin/sam list stack-outputs --stack-name {stack} --region {region}"""]
    if ".aoss.amazonaws.com" in url:
        steps.append("Grant FunctionRoleArn the collection's data access policy (docs/deploy.md#opensearch-serverless-policies-and-a-vpc-endpoint)")
    elif overrides.get("DomainArn"):
        steps.append("Under fine-grained access control, map FunctionRoleArn and FirehoseRoleArn to roles that may write "
                     "(docs/deploy.md#fine-grained-access-control-the-two-roles)")
        if overrides.get("DeliveryStreamName") != "none":
            steps.append(f"""Install the Firehose pipeline and the index template (DEV_TOOLS=1 prints them for Dev Tools):
       make firehose-pipeline ES_URL={url}
       make index-template ES_URL={url}""")
    else:
        steps.append("Let the function's credentials create and write the indices ES_INDEX names")
    steps.append("Start reading the stream:\n       make deploy SET=EventSourceMappingEnabled=true")
    print(f"\nDeployed {stack}, with the event source mapping off: nothing is read from the stream yet. Next (docs/deploy.md):")
    for number, step in enumerate(steps, 1):
        print(f"  {number}. {step}")


def package(arguments):
    if not arguments.bucket:
        fail("package needs BUCKET (a bucket the Serverless Application Repository may read: docs/deploy.md)")
    runner = Runner(arguments.print_commands)
    sam_build(runner, arguments.architecture)
    runner.run(["sam", "package", "--use-json", "--s3-bucket", arguments.bucket, "--output-template-file", "packaged.json"])
    runner.run([sys.executable, "scripts/sar_listing.py", "packaged.json", arguments.architecture])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("deploy", "build", "package"):
        command = commands.add_parser(name)
        command.add_argument("--architecture", choices=["x86_64", "arm64"], default=None if name == "deploy" else "x86_64")
        command.add_argument("--print-commands", action="store_true", help="save the answers, print the commands instead of running them")
        if name == "deploy":
            command.add_argument("--reconfigure", action="store_true", help="ask again, offering the saved answers")
            command.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="change one saved answer")
            command.add_argument("--config-env", default="default", help="the samconfig.toml environment (one per stack)")
            command.add_argument("--config-file", default=str(CONFIG), help="where the answers are saved (samconfig.toml)")
        if name == "package":
            command.add_argument("--bucket", default="")
    arguments = parser.parse_args(argv)
    {"deploy": deploy, "build": build, "package": package}[arguments.command](arguments)


if __name__ == "__main__":
    main()
