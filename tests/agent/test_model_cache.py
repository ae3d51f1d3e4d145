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
        want = aws._without_docs(json.loads(f.read()))
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


def _model(service: str) -> dict[str, Any]:
    path = sorted(glob.glob(os.path.join(os.path.dirname(botocore.__file__), "data", service, "*",
                                         "service-2.json*")))[-1]
    with _open(path) as f:
        return dict(json.loads(f.read()))


@pytest.mark.parametrize("service", ["ec2", "s3", "iam", "sqs", "sts", "ecs", "logs", "cloudwatch", "sns",
                                     "lambda", "service-quotas"])
def test_a_model_without_docs_is_the_same_model(service: str) -> None:
    """Every operation, shape and member (a member may be named like anything, "documentation" too) and every
    other section survive; only documentation strings go, and they do go."""
    from botocore.model import ServiceModel

    full = _model(service)
    lean = aws._without_docs(full)
    a, b = ServiceModel(full, service), ServiceModel(lean, service)
    assert list(a.operation_names) == list(b.operation_names)
    assert [p.name for p in a.client_context_parameters] == [p.name for p in b.client_context_parameters]
    assert {k: v for k, v in full.items() if k not in ("operations", "shapes", "documentation")} == \
        {k: v for k, v in lean.items() if k not in ("operations", "shapes")}
    for name, shape in full["shapes"].items():
        assert set(shape.get("members", {})) == set(lean["shapes"][name].get("members", {})), name
        assert {k for k in shape if k != "documentation"} == set(lean["shapes"][name]), name
    for op in a.operation_names:
        x, y = a.operation_model(op), b.operation_model(op)
        assert (x.input_shape and list(x.input_shape.members)) == (y.input_shape and list(y.input_shape.members))
        assert (x.output_shape and list(x.output_shape.members)) == (y.output_shape and list(y.output_shape.members))
        assert y.documentation == ""
    assert "documentation" not in json.dumps(lean["operations"]).replace('"documentation": {', "")


def test_a_member_named_documentation_is_kept() -> None:
    model = {"operations": {}, "shapes": {"S": {"type": "structure", "documentation": "<p>x</p>",
                                                "members": {"documentation": {"shape": "T", "documentation": "y"}}}}}
    assert aws._without_docs(model)["shapes"]["S"] == {"type": "structure", "members": {"documentation": {"shape": "T"}}}
