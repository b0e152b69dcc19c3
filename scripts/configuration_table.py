#!/usr/bin/env python3
"""Writes the table of template parameters in docs/configuration.md from template.yaml (default, allowed values,
the variable each sets, its description). `tests/template_test.py` checks the table against the template, so run
this after adding or changing a parameter:

    python3 scripts/configuration_table.py
"""
import pathlib
import re

from cfnlint.decode import decode

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"
HEADER = "| parameter | default | allowed | what it sets |"


def cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def table():
    template, _ = decode(str(ROOT / "template.yaml"))
    variables = template["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    sets = {}
    for variable, value in variables.items():
        for name in re.findall(r"'Ref': '(\w+)'", str(value)):
            sets.setdefault(name, []).append(variable)
    rows = [HEADER, "|---|---|---|---|"]
    for name, parameter in template["Parameters"].items():
        default = parameter.get("Default")
        default = "required" if default is None else ("empty" if str(default) == "" else f"`{cell(default)}`")
        allowed = ", ".join(f"`{cell(v)}`" for v in parameter.get("AllowedValues", []))
        if not allowed and "AllowedPattern" in parameter:
            allowed = f"pattern `{cell(parameter['AllowedPattern'])}`"
        if "MinValue" in parameter or "MaxValue" in parameter:
            allowed = f"{allowed} {parameter.get('MinValue', '')}–{parameter.get('MaxValue', '')}".strip()
        what = cell(parameter.get("Description", ""))
        if name in sets:
            what = ", ".join(f"`{v}`" for v in sets[name]) + (f": {what}" if what else "")
        rows.append(f"| `{name}` | {default} | {allowed} | {what} |")
    return "\n".join(rows)


def main():
    text = DOC.read_text()
    start = text.index(HEADER)
    end = text.index("\n\n", start)
    DOC.write_text(text[:start] + table() + text[end:])


if __name__ == "__main__":
    main()
