"""docs/operations.md answers everything an operator can be woken by: each ERROR and WARN message of the function
(every `tracing::error!`/`tracing::warn!` in src/), each status `make replay` prints, and each alarm and metric of
template.yaml has an entry there, so a new one cannot be added without it.

    python3 -m unittest discover -s tests -p '*_test.py'
"""
import pathlib
import re
import unittest

ROOT = pathlib.Path(__file__).resolve().parent.parent
RUNBOOK = ROOT / "docs" / "operations.md"
LEVELS = re.compile(r"\btracing::(error|warn)!\s*\(")


def rust_string(literal):
    """The text of a Rust string literal (quotes included), with `\\` line continuations joined as rustc joins them
    and the common escapes resolved."""
    body = literal[1:-1]
    body = re.sub(r"\\\n\s*", "", body)
    return body.replace('\\"', '"').replace("\\\\", "\\").replace("\\n", "\n")


def top_level_arguments(text, start):
    """The arguments of the macro call whose `(` is at `start`, split at top-level commas (strings, nested brackets
    and closures kept whole), and where the call ends."""
    depth, i, current, arguments = 0, start, [], []
    while i < len(text):
        c = text[i]
        if c == '"':
            end = i + 1
            while text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            current.append(text[i:end + 1])
            i = end + 1
            continue
        if c in "([{":
            depth += 1
            if depth == 1:
                i += 1
                continue
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                arguments.append("".join(current).strip())
                return [a for a in arguments if a], i
        elif c == "," and depth == 1:
            arguments.append("".join(current).strip())
            current = []
            i += 1
            continue
        current.append(c)
        i += 1
    raise ValueError("unbalanced macro call")


def function_messages():
    """(file, level, message) of every ERROR and WARN line in src/: the macro's last argument, its message."""
    found = []
    for path in sorted((ROOT / "src").rglob("*.rs")):
        text = path.read_text()
        # Test modules log nothing an operator sees.
        text = text.split("#[cfg(test)]\nmod tests", 1)[0]
        for match in LEVELS.finditer(text):
            arguments, _ = top_level_arguments(text, match.end() - 1)
            last = arguments[-1]
            if not (last.startswith('"') and last.endswith('"')):
                raise AssertionError(f"{path.relative_to(ROOT)}: a {match.group(1)} line without a literal message: {last[:80]}")
            found.append((str(path.relative_to(ROOT)), match.group(1).upper(), rust_string(last)))
    return found


def replay_statuses():
    """The statuses `make replay` prints at the start of a result line in capitals (`NOT REPLAYED`, `PARTLY`, …):
    the words of `Status` in src/replay/report.rs."""
    text = (ROOT / "src" / "replay" / "report.rs").read_text().split("#[cfg(test)]", 1)[0]
    return sorted(set(re.findall(r'Status::\w+ => "([A-Z][A-Z]+(?: [A-Z]+)*)",', text)))


def template_alarms_and_metrics():
    """The alarms `template.yaml` creates, and the metrics its log filters publish."""
    text = (ROOT / "template.yaml").read_text()
    alarms = re.findall(r"^  (\w+):\n    Type: AWS::CloudWatch::Alarm$", text, re.M)
    metrics = re.findall(r"^\s+- MetricNamespace: .*\n\s+MetricName: (\w+)$", text, re.M)
    return alarms, metrics


def cause_names():
    """Every `cause` a line can carry: the names `Cause::name` and `Fix::name` give in src/cause/mod.rs."""
    text = (ROOT / "src" / "cause" / "mod.rs").read_text().split("#[cfg(test)]", 1)[0]
    return re.findall(r"(?:Cause|Fix)::\w+(?:\(\w+\))? => \"([a-z_]+)\",", text)


class RunbookTest(unittest.TestCase):
    def test_every_cause_a_line_can_carry_has_an_entry(self):
        runbook = RUNBOOK.read_text()
        names = cause_names()
        self.assertGreater(len(names), 15, "the collector finds the causes")
        missing = [name for name in names if f"| `{name}` |" not in runbook]
        self.assertEqual(missing, [], "causes docs/operations.md's table does not explain")

    def test_every_alarm_names_its_widget_on_the_dashboard(self):
        template = (ROOT / "template.yaml").read_text()
        titles = set(re.findall(r'"title": "([^"]+)"', template))
        self.assertGreaterEqual(len(titles), 6, "the dashboard's widgets")
        alarms, _ = template_alarms_and_metrics()
        rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+Alarm)` \|.*\| ([^|]+) \|$", RUNBOOK.read_text(), re.M)}
        for alarm in alarms:
            self.assertIn(rows.get(alarm, "").strip(), titles, f"{alarm}'s row names no widget of the dashboard")

    def test_every_alarm_and_metric_of_the_template_has_an_entry(self):
        runbook = RUNBOOK.read_text()
        alarms, metrics = template_alarms_and_metrics()
        self.assertGreater(len(alarms), 8, "the collector finds the template's alarms")
        self.assertGreater(len(metrics), 5, "and its metrics")
        missing = [name for name in alarms + metrics if f"`{name}`" not in runbook]
        self.assertEqual(missing, [], "alarms and metrics docs/operations.md does not explain")

    def test_every_error_and_warn_line_of_the_function_has_an_entry(self):
        runbook = RUNBOOK.read_text()
        messages = function_messages()
        self.assertGreater(len(messages), 10, "the collector finds the function's messages")
        missing = [f"{level} {message!r} ({file})" for file, level, message in messages if message not in runbook]
        self.assertEqual(missing, [], "messages docs/operations.md does not quote")

    def test_every_status_make_replay_prints_has_an_entry(self):
        runbook = RUNBOOK.read_text()
        statuses = replay_statuses()
        self.assertIn("NOT REPLAYED", statuses)
        missing = [status for status in statuses if f"`{status}`" not in runbook]
        self.assertEqual(missing, [], "make replay statuses docs/operations.md does not explain")

    def test_the_collector_reads_multi_line_messages_and_skips_their_fields(self):
        text = 'x tracing::warn!(a = %b, c = format!("{}, {}", d, e), "first part \\\n     second part")'
        arguments, _ = top_level_arguments(text, text.index("("))
        self.assertEqual(len(arguments), 3)
        self.assertEqual(rust_string(arguments[-1]), "first part second part")


if __name__ == "__main__":
    unittest.main()
