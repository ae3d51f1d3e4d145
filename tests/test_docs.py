"""The documentation cannot drift from the code: docs/checks.md is what ``dcp-agent list --markdown`` writes
from the check registry (as the shipped policies are what agent.policy renders), and the site builds with
``mkdocs build --strict``, offline (the loopback guard every test subprocess carries fails any fetch), so a
broken link, a missing anchor or a page left out of the navigation fails the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent import catalogue

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "checks.md"
AGENT = str(Path(sys.executable).parent / "dcp-agent")


def test_check_catalogue_is_generated_from_the_registry() -> None:
    assert PAGE.read_text(encoding="utf-8") == catalogue.render(), \
        f"docs/checks.md is stale: run {catalogue.REGENERATE}"


def test_list_markdown_writes_the_committed_page() -> None:
    out = subprocess.run([AGENT, "list", "--markdown"], capture_output=True, text=True, timeout=60, check=False)
    assert (out.returncode, out.stderr) == (0, "")
    assert out.stdout == PAGE.read_text(encoding="utf-8"), f"docs/checks.md is stale: run {catalogue.REGENERATE}"


def test_every_check_has_a_section_and_no_long_table_cell() -> None:
    text = catalogue.render()
    from agent.registry import all_checks

    for c in all_checks():
        assert f"### {c.code} `{c.id}` {{#{c.code.lower()}}}" in text
    cells = [cell for line in text.splitlines() if line.startswith("|") for cell in line.split("|")]
    assert max(map(len, cells)) <= 300

