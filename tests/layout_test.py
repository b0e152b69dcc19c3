"""docs/development.md's layout names every source file of the repository, so that a new file cannot be left out.

    python3 -m unittest discover -s tests -p '*_test.py'
"""
import pathlib
import re
import subprocess
import unittest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = re.compile(r"\.(rs|py)$")


def listed_paths(readme):
    """The paths the layout names: a line at four spaces is a folder (ending in /) or a file; a line at six spaces
    is a file of the last folder; deeper lines continue a description."""
    block = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    folder, paths = "", set()
    for line in block.splitlines():
        match = re.match(r"^( {4}| {6})(\S+)", line)
        if not match:
            continue
        indent, name = match.groups()
        if len(indent) == 4:
            folder = name if name.endswith("/") else ""
            if not name.endswith("/"):
                paths.add(name)
        elif folder:
            paths.add(folder + name)
    return paths


class LayoutTest(unittest.TestCase):
    def test_every_source_file_is_in_the_readme_layout(self):
        tracked = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout.split()
        sources = {path for path in tracked if SOURCE.search(path) and (ROOT / path).exists()}
        listed = listed_paths((ROOT / "docs" / "development.md").read_text())
        self.assertEqual(sorted(sources - listed), [], "source files docs/development.md's layout does not name")
        self.assertEqual(sorted(p for p in listed - sources if SOURCE.search(p)), [], "named but not there")

    def test_the_reading_of_the_layout_finds_folders_and_their_files(self):
        readme = "x\n## Layout\n\n    src/   a\n      main.rs   b\n                continued\n    top.py  c\n## Next\n"
        self.assertEqual(listed_paths(readme), {"src/main.rs", "top.py"})


def outside_links(path):
    """The links of a Markdown file that do not land on a file of the repository: a relative target outside it or
    missing, or a path written in backquotes that climbs out of it (`../…`). Web addresses are not checked."""
    text = path.read_text()
    found = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        resolved = (path.parent / target.split("#", 1)[0]).resolve()
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            found.append(target)
    found += re.findall(r"`(\.\./[^`]*)`", text)
    return found


class LinksTest(unittest.TestCase):
    def test_readme_and_docs_link_only_inside_the_repository(self):
        for path in [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]:
            with self.subTest(path.name):
                self.assertEqual(outside_links(path), [], "the repository stands alone: what a reader needs lives in docs/")

    def test_an_outside_link_is_found(self):
        page = ROOT / "docs" / "links-probe.md"
        try:
            page.write_text("[faults](../../shared/FAULTS.md), [ok](faults.md#scenarios), [gone](nowhere.md), `../shared/x`, [web](https://example.com)\n")
            self.assertEqual(outside_links(page), ["../../shared/FAULTS.md", "nowhere.md", "../shared/x"])
        finally:
            page.unlink()


if __name__ == "__main__":
    unittest.main()
