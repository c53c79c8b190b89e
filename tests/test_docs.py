"""The README is the front door and docs/ the reference (issue 23): every relative link in them
resolves, and every `rnnkit ...` command the README shows parses with rnnkit's own parser."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from rnnkit.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r"^#+ (.+)$", page.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    bad = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue                                # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            bad.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(target)
    assert not bad, f"{page.name}: {bad}"


def readme_commands() -> list[list[str]]:
    """The rnnkit command lines in the README's code blocks (torchrun's `-m rnnkit ...` included)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["rnnkit"]:
                found.append(words[1:])
            elif words[:1] == ["torchrun"] and "-m" in words:
                i = words.index("-m")
                assert words[i + 1] == "rnnkit", line
                found.append(words[i + 2:])
    return found


def test_the_readme_shows_commands():
    assert len(readme_commands()) >= 10


@pytest.mark.parametrize("argv", readme_commands(), ids=" ".join)
def test_readme_commands_parse(argv):
    args = build_parser().parse_args(argv)
    assert args.command == argv[0]
