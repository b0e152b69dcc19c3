"""scripts/check_architecture.py: a bootstrap of the wrong machine type is refused before it is deployed.

    python3 -m unittest discover -s tests -p '*_test.py'
"""
import importlib.util
import pathlib
import struct
import tempfile
import unittest

ROOT = pathlib.Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_architecture", ROOT / "scripts" / "check_architecture.py")
check_architecture = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_architecture)


def elf(machine):
    """The first 20 bytes of a little-endian 64-bit ELF executable for `machine`."""
    return b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack("<HH", 2, machine)


class ArchitectureTest(unittest.TestCase):
    def write(self, content):
        f = tempfile.NamedTemporaryFile(delete=False)
        f.write(content)
        f.close()
        self.addCleanup(pathlib.Path(f.name).unlink)
        return f.name

    def test_each_machine_type_is_recognised(self):
        self.assertEqual(check_architecture.machine_of(self.write(elf(0x3E))), "x86_64")
        self.assertEqual(check_architecture.machine_of(self.write(elf(0xB7))), "arm64")
        self.assertEqual(check_architecture.machine_of(self.write(elf(0x28))), "ELF machine 0x28")
        self.assertEqual(check_architecture.machine_of(self.write(b"#!/bin/sh\n")), "not an ELF executable")

    def test_a_binary_of_the_other_architecture_is_refused_with_the_command_that_fixes_it(self):
        arm = self.write(elf(0xB7))
        self.assertIsNone(check_architecture.check(arm, "arm64"))
        why = check_architecture.check(arm, "x86_64")
        self.assertIn("is arm64, but the function is deployed as x86_64", why)
        self.assertIn("make deploy ARCH=x86_64", why)
        self.assertIn("unknown architecture", check_architecture.check(arm, "aarch64"))

    def test_a_real_binary_of_this_machine(self):
        built = ROOT / "target" / "debug" / "bootstrap"
        if not built.exists():
            self.skipTest("no target/debug/bootstrap (cargo build)")
        import platform
        here = {"x86_64": "x86_64", "aarch64": "arm64"}[platform.machine()]
        self.assertIsNone(check_architecture.check(str(built), here))
        other = "arm64" if here == "x86_64" else "x86_64"
        self.assertIsNotNone(check_architecture.check(str(built), other))


if __name__ == "__main__":
    unittest.main()
