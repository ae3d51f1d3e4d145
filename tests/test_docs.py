"""The documentation cannot drift from the code: docs/checks.md is what ``dcp-agent list --markdown`` writes
from the check registry (as the shipped policies are what agent.policy renders), and the site builds with
``mkdocs build --strict``, offline (the loopback guard every test subprocess carries fails any fetch), so a
broken link, a missing anchor or a page left out of the navigation fails the suite."""

from __future__ import annotations

import os
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


def test_every_check_has_a_section() -> None:
    from agent.registry import all_checks

    text = catalogue.render()
    assert [c.code for c in all_checks() if f"### {c.code} `{c.id}` {{#{c.code.lower()}}}" not in text] == []


def test_no_table_cell_is_a_paragraph() -> None:
    """A long explanation is a paragraph or a section of its own, never a table cell (about 300 characters)."""
    long = [(page.name, n, len(cell.strip())) for page in sorted((ROOT / "docs").glob("*.md"))
            for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1) if line.startswith("|")
            for cell in line.split("|") if len(cell.strip()) > 300]
    assert long == []


def test_site_builds_strict_offline(tmp_path: Path) -> None:
    """What `make docs` and `make test` run: every page in the navigation, every link and anchor resolves,
    nothing fetched (the loopback guard this subprocess carries fails the test on any connection)."""
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                          str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                         capture_output=True, text=True, timeout=300, check=False,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "site" / "checks" / "index.html").exists()

