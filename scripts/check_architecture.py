#!/usr/bin/env python3
"""Fails when a built `bootstrap` is not for the architecture the function will be deployed with.

Lambda runs an arm64 function on Graviton and an x86_64 one on Intel/AMD; a binary of the other machine type fails
every cold start with `Runtime.InvalidEntrypoint` (exec format error), and every batch goes back to Kinesis.
The machine type is read from the ELF header (`e_machine`: 0x3E x86-64, 0xB7 AArch64).

    python3 scripts/check_architecture.py .aws-sam/build/Function/bootstrap x86_64|arm64
"""
import struct
import sys

MACHINES = {0x3E: "x86_64", 0xB7: "arm64"}


def machine_of(path):
    """`x86_64`, `arm64`, or a description of what else the file is."""
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return "not an ELF executable"
    byte_order = "<" if header[5] == 1 else ">"
    (machine,) = struct.unpack(byte_order + "H", header[18:20])
    return MACHINES.get(machine, f"ELF machine 0x{machine:x}")


def check(path, architecture):
    """None when `path` runs on `architecture`, else why not."""
    if architecture not in MACHINES.values():
        return f"unknown architecture {architecture!r}: the template's Architecture is arm64 or x86_64"
    found = machine_of(path)
    if found != architecture:
        return (
            f"{path} is {found}, but the function is deployed as {architecture}: Lambda would fail every cold start "
            f"(Runtime.InvalidEntrypoint). Build and deploy with one ARCH: make deploy ARCH={architecture}"
        )
    return None


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    path, architecture = sys.argv[1], sys.argv[2]
    try:
        why = check(path, architecture)
    except OSError as e:
        sys.exit(f"{path}: {e.strerror}; build it first (make build ARCH={architecture})")
    if why:
        sys.exit(why)
    print(f"{path} is {architecture}, as the function is deployed")


if __name__ == "__main__":
    main()
