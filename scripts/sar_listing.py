#!/usr/bin/env python3
"""`make package`: the Serverless Application Repository listing offers only the architecture it ships.

`sam package` uploads one bootstrap, built for one architecture, but the template's Architecture parameter offers
both: an application deployed from the listing with the other one would fail every cold start with
`Runtime.InvalidEntrypoint`. This narrows the packaged template's Architecture to the one built.

    python3 scripts/sar_listing.py packaged.json x86_64
"""
import json
import pathlib
import sys


def narrow(template, architecture):
    declared = template["Parameters"]["Architecture"]
    if architecture not in declared["AllowedValues"]:
        raise ValueError(f"{architecture} is not one of the template's architectures {declared['AllowedValues']}")
    declared["AllowedValues"] = [architecture]
    declared["Default"] = architecture
    declared["Description"] = f"The architecture this package was built for ({architecture}); the only one it runs on"
    return template


def main():
    path, architecture = pathlib.Path(sys.argv[1]), sys.argv[2]
    template = narrow(json.loads(path.read_text()), architecture)
    path.write_text(json.dumps(template, indent=2) + "\n")
    print(f"{path}: the listing offers {architecture} only, the architecture of the binary it ships")


if __name__ == "__main__":
    main()
