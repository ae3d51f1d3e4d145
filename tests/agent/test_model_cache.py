"""botocore's large model files come from a marshal copy in the user's cache (agent.facts.aws._parsed): the copy
equals the parsed file, is private, is never read or written through a symlink, and a damaged or foreign copy
falls back to parsing."""

from __future__ import annotations

import glob
import gzip
import json
import os
from pathlib import Path
from typing import Any

import botocore
import pytest

from agent.facts import aws

EC2 = sorted(glob.glob(os.path.join(os.path.dirname(botocore.__file__), "data", "ec2", "*", "service-2.json*")))[-1]


def _open(path: str, mode: str = "rb") -> Any:
    """How botocore's loader opens a data file (gzip for the .json.gz ones)."""
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "dcp-agent" / "models" / botocore.__version__


def test_the_copy_equals_the_file_and_is_private(models: Path) -> None:
    with _open(EC2) as f:
        want = json.loads(f.read())
    assert aws._parsed(EC2, _open) == want                       # parsed, and the copy written
    (copy,) = models.iterdir()
    assert copy.stat().st_mode & 0o777 == 0o600 and models.stat().st_mode & 0o077 == 0
    assert aws._parsed(EC2, _open) == want                       # from the copy


def test_a_damaged_copy_is_parsed_again_and_replaced(models: Path) -> None:
    aws._parsed(EC2, _open)
    (copy,) = models.iterdir()
    copy.write_bytes(b"\x00not marshal")
    assert "DescribeInstances" in aws._parsed(EC2, _open)["operations"]
    assert copy.read_bytes() != b"\x00not marshal"


def test_a_symlink_in_place_of_the_copy_is_neither_read_nor_written_through(models: Path, tmp_path: Path) -> None:
    aws._parsed(EC2, _open)
    (copy,) = models.iterdir()
    elsewhere = tmp_path / "someone-elses-file"
    elsewhere.write_text("keep me")
    copy.unlink()
    copy.symlink_to(elsewhere)
    assert "DescribeInstances" in aws._parsed(EC2, _open)["operations"]
    assert elsewhere.read_text() == "keep me" and not copy.is_symlink()


def test_a_directory_others_can_write_is_not_used(models: Path) -> None:
    models.mkdir(parents=True)
    models.chmod(0o777)
    assert "DescribeInstances" in aws._parsed(EC2, _open)["operations"]
    assert list(models.iterdir()) == []
