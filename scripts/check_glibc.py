#!/usr/bin/env python3
"""Fails when a binary needs a glibc newer than Amazon Linux 2023's (2.34), which Lambda's provided.al2023 runs.

    python3 scripts/check_glibc.py target/lambda/bootstrap/bootstrap
"""
import re
import subprocess
import sys

LIMIT = (2, 34)


def main():
    path = sys.argv[1]
    symbols = subprocess.run(["objdump", "-T", path], capture_output=True, text=True, check=True).stdout
    versions = {tuple(int(p) for p in v.split(".")) for v in re.findall(r"GLIBC_([0-9]+(?:\.[0-9]+)+)", symbols)}
    if not versions:
        print(f"{path}: no glibc symbol versions (static or not a glibc binary)")
        return
    needed = max(versions)
    label = "GLIBC_" + ".".join(map(str, needed))
    if needed > LIMIT:
        sys.exit(
            f"{path} needs {label}, newer than Amazon Linux 2023's GLIBC_2.34: build it on a system with glibc 2.34 or "
            "older, or link against an older glibc with zig (`pip install ziglang`, `cargo lambda build --compiler cargo-zigbuild`)"
        )
    print(f"{path} needs {label} at most: fine for provided.al2023 (GLIBC_2.34)")


if __name__ == "__main__":
    main()
