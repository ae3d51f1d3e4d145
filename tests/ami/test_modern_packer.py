"""build-ami on current Packer, and what build-ami renders for each Packer.

Current Packer (>= 1.10, plugins via `packer init`) cannot be installed here (test-rig.md §7): these tests put
a recording stand-in on PATH as `packer` (rig/packer_standin.py, a stub that reports v1.11.2, records its
arguments and answers init/validate/fmt/build as Packer does, and never talks to AWS or SSH). Everything
else is real: `invoke build-ami` and `invoke validate`, moto server behind the recording proxy, and, for
the 1.6.6 template, Debian's real Packer.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from bootstrap import ami
from bootstrap.ami import PROJECT, BuildConfig, BuildError, SourceImage, SshSource
from rig import packer_standin
from rig.moto_server import MotoServer
from rig.nodes import SOURCE_AMI, emulator_env
from rig.proxy import LatencyProxy
from rig.seed import default_vpc_with_internet
from tests.conftest import ROOT

INVOKE = str(Path(sys.executable).parent / "invoke")


@dataclass
class Modern:
    proxy: LatencyProxy
    log: Path
    plugins: Path
    env: dict[str, str]
    ami: str

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([INVOKE, *args], capture_output=True, text=True, cwd=ROOT, env={**self.env, **env},
                              timeout=600, check=False)

    def build(self, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
        # No --ssh-host: the stand-in never connects anywhere (nor could it), and without a loopback SSH host
        # build-ami takes the path a real account takes (the operator's public address on current Packer).
        return self.run("build-ami", "--region", "us-east-1", "--endpoint", self.proxy.endpoint,
                        "--source-ami-name", SOURCE_AMI, *extra, **env)

    def calls(self) -> list[list[str]]:
        return packer_standin.calls(self.log)


@pytest.fixture
def modern(moto: MotoServer, tmp_path: Path) -> Iterator[Modern]:
    moto.reset()
    ec2 = boto3.client("ec2", endpoint_url=moto.endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    base = ec2.describe_images(Owners=["099720109477"], Filters=[{"Name": "name", "Values": [SOURCE_AMI]}])["Images"][0]
    source = ec2.run_instances(ImageId=base["ImageId"], MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    image = ec2.create_image(InstanceId=source, Name="dcp-control-node-20261125-000000")["ImageId"]  # "built" by the stand-in
    default_vpc_with_internet(ec2)          # as on a real account: the build's public address is reachable
    packer_standin.install(tmp_path / "bin")
    env = emulator_env()
    env.update(PATH=f"{tmp_path / 'bin'}:{env['PATH']}", PACKER_STANDIN_LOG=str(tmp_path / "packer-calls.jsonl"),
               PACKER_PLUGIN_PATH=str(tmp_path / "plugins"), PACKER_STANDIN_AMI=image)
    with LatencyProxy(moto.endpoint) as proxy:
        yield Modern(proxy, tmp_path / "packer-calls.jsonl", tmp_path / "plugins", env, image)


def work_dir(p: subprocess.CompletedProcess[str]) -> Path:
    line = next(ln for ln in p.stdout.splitlines() if "work folder" in ln)
    return Path(line.rsplit("work folder ", 1)[1].strip())


def test_build_ami_on_current_packer_runs_init_then_validate_then_build(modern: Modern) -> None:
    p = modern.build()
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.strip().splitlines()[-1] == modern.ami
    assert "build-ami: Packer 1.11.2;" in p.stdout
    work = work_dir(p)
    templates, var_file = work / "templates", work / "build.auto.pkrvars.json"
    assert [c[0] for c in modern.calls()] == ["version", "init", "validate", "build"]
    _, init, validate, build = modern.calls()
    assert init == ["init", str(templates)]
    assert validate == ["validate", f"-var-file={var_file}", str(templates)]
    assert build[0] == "build" and build[-1] == str(templates) and set(build[1:-1]) == {
        f"-var-file={var_file}", "-color=false"}
    # The plugin was installed by init, for the template build-ami rendered for current Packer.
    assert list(modern.plugins.glob("github.com/hashicorp/amazon/packer-plugin-amazon_v*"))
    assert (templates / "plugins.pkr.hcl").exists()
    hcl = (templates / "control-node.pkr.hcl").read_text()
    for line in ("temporary_security_group_source_public_ip = var.ssh_source_public_ip", "http_tokens",
                 'imds_support = "v2.0"', "launch_block_device_mappings", "encrypted             = true"):
        assert line in hcl, line
    assert not re.search(r"^\s*encrypt_boot\s*=", hcl, re.M)
    # SSH from the operator's own address (Packer looks it up), never 0.0.0.0/0; run tags for cleanup-build.
    values = json.loads(var_file.read_text())
    assert values["ssh_source_public_ip"] is True and values["ssh_source_cidrs"] == []
    assert values["run_tags"]["dcp:project"] == PROJECT and values["run_tags"]["dcp:build-id"] == work.name
    assert values["root_device_name"] == "/dev/sda1" and values["root_volume_size"] >= 8
    # The AMI the stand-in reported was finished with boto3: IMDSv2 and tags, this build's id among them.
    imds = [r.params() for r in modern.proxy.records if r.action == "ModifyImageAttribute"]
    assert [(i["ImageId"], i["ImdsSupport.Value"]) for i in imds] == [(modern.ami, "v2.0")]
    tags = {t["Key"]: t["Value"] for t in boto3.client(
        "ec2", endpoint_url=modern.proxy.endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing").describe_images(ImageIds=[modern.ami])["Images"][0]["Tags"]}
    assert tags["dcp:build-id"] == work.name and tags["dcp:python"] == "Python 3.12.3"


def test_ssh_cidr_on_current_packer_replaces_the_public_address(modern: Modern) -> None:
    p = modern.build("--ssh-cidr", "203.0.113.7, 198.51.100.0/24")
    assert p.returncode == 0, p.stdout + p.stderr
    values = json.loads((work_dir(p) / "build.auto.pkrvars.json").read_text())
    assert values["ssh_source_cidrs"] == ["203.0.113.7/32", "198.51.100.0/24"]
    assert values["ssh_source_public_ip"] is False


def test_init_without_plugin_or_network_says_what_to_run_and_creates_nothing(modern: Modern) -> None:
    p = modern.build(PACKER_STANDIN_OFFLINE="1")
    assert p.returncode == 2, p.stdout + p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "build-ami: packer init cannot download the amazon plugin (github.com/hashicorp/amazon)" in p.stderr
    assert "`packer plugins install github.com/hashicorp/amazon`" in p.stderr
    assert [c[0] for c in modern.calls()] == ["version", "init"]
    assert not {"RunInstances", "CreateSecurityGroup", "CreateKeyPair", "ModifyImageAttribute"} & set(
        modern.proxy.actions())


def test_init_is_idempotent_once_the_plugin_is_there(modern: Modern) -> None:
    first = modern.run("validate")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "formatted and valid (Packer 1.11.2)" in first.stdout
    # Offline now, but the plugin is installed: init does nothing and everything still works.
    again = modern.build(PACKER_STANDIN_OFFLINE="1")
    assert again.returncode == 0, again.stdout + again.stderr
    assert [c[0] for c in modern.calls()] == ["version", "init", "fmt", "validate",
                                              "version", "init", "validate", "build"]


# -- what build-ami renders for each Packer: unit-level, on the real functions and the real template -------

def local_cfg(**kw: str) -> BuildConfig:
    return BuildConfig(region="us-east-1", **kw)   # type: ignore[arg-type]


def test_ssh_source_is_never_the_whole_internet() -> None:
    real = local_cfg()                                        # a real account: no emulator endpoint
    assert ami.ssh_source(real, modern=True) == SshSource(public_ip=True)
    with pytest.raises(BuildError, match=r"Packer 1\.6\.6 cannot limit the temporary security group.*--ssh-cidr"):
        ami.ssh_source(real, modern=False)
    cidr = local_cfg(ssh_cidr="203.0.113.7/32")
    assert ami.ssh_source(cidr, modern=False) == ami.ssh_source(cidr, modern=True) == SshSource(cidrs=("203.0.113.7/32",))
    assert ami.ssh_source(local_cfg(security_group_id="sg-12345678"), modern=False) == SshSource()
    emulator = local_cfg(endpoint="http://127.0.0.1:5000", ssh_host="127.0.0.1")
    assert ami.ssh_source(emulator, modern=False) == SshSource(cidrs=("127.0.0.1/32",))
    for bad in ("0.0.0.0/0", "10.0.0.1/8", "not-an-address", "::/0"):
        with pytest.raises(BuildError):
            ami.parse_cidrs(bad)


@pytest.mark.parametrize("modern", [True, False], ids=["current", "1.6.6"])
def test_rendered_template_and_variables(modern: bool, tmp_path: Path) -> None:
    templates = ami.template_dir(tmp_path / "templates", modern=modern)
    hcl = (templates / "control-node.pkr.hcl").read_text()
    assert (templates / "plugins.pkr.hcl").exists() is modern
    assert ("temporary_security_group_source_public_ip" in hcl.split("source \"amazon-ebs\"")[1]) is modern
    assert ("metadata_options" in hcl) is modern
    assert "temporary_security_group_source_cidrs     = var.ssh_source_cidrs" in hcl
    assert "run_volume_tags      = var.run_tags" in hcl and not re.search(r"^\s*encrypt_boot\s*=", hcl, re.M)
    ssh = SshSource(public_ip=True) if modern else SshSource(cidrs=("203.0.113.7/32",))
    var_file = ami.packer_vars(local_cfg(), tmp_path, tmp_path, tmp_path / "recipe.sh", {"Name": "x"},
                               run=ami.run_tags("b1", 0), ssh=ssh, source=SourceImage("ami-1", "/dev/xvda", 30))
    values = json.loads(var_file.read_text())
    assert values["ssh_source_public_ip"] is modern
    assert values["ssh_source_cidrs"] == ([] if modern else ["203.0.113.7/32"])
    assert values["run_tags"] == {"Name": ami.BUILD_TAG, "dcp:project": PROJECT, "dcp:build-id": "b1",
                                  "dcp:build-started": "1970-01-01T00:00:00Z"}
    assert (values["root_device_name"], values["root_volume_size"]) == ("/dev/xvda", 30)


@pytest.mark.packer
def test_packer_1_6_6_refuses_ssh_from_anywhere_in_the_template(tmp_path: Path) -> None:
    """Defence in depth: even a hand-written variable file cannot open SSH to 0.0.0.0/0 (real Packer 1.6.6)."""
    templates = ami.template_dir(tmp_path / "templates", modern=False)
    (tmp_path / "recipe.sh").write_text("#!/bin/sh\n")
    var_file = ami.packer_vars(local_cfg(), tmp_path, tmp_path, tmp_path / "recipe.sh", {}, run=ami.run_tags("b1"),
                               ssh=SshSource(cidrs=("203.0.113.7/32",)), source=SourceImage("ami-1", "/dev/sda1", 8))
    ok = subprocess.run(["packer", "validate", f"-var-file={var_file}", str(templates)], capture_output=True,
                        text=True, env=emulator_env(), check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    values = json.loads(var_file.read_text())
    var_file.write_text(json.dumps({**values, "ssh_source_cidrs": ["0.0.0.0/0"]}))
    bad = subprocess.run(["packer", "validate", f"-var-file={var_file}", str(templates)], capture_output=True,
                         text=True, env=emulator_env(), check=False)
    assert bad.returncode == 1 and "SSH must not be open to the whole internet" in bad.stdout + bad.stderr
