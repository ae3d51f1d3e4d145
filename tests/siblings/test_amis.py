"""AMIs of different Distributed-* projects side by side in one account (moto server, on 127.0.0.1): launch-node picks
the project's own (dcp:distributed-project; untagged ones are DCP's), and cleanup-build --keep N counts each
project's AMIs on their own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from bootstrap import cleanup, node
from bootstrap.ami import PROJECT, PROJECT_TAG
from rig.moto_server import MotoServer
from rig.nodes import SOURCE_AMI


@pytest.fixture
def ec2(moto: MotoServer) -> Iterator[Any]:
    moto.reset()
    client = boto3.client("ec2", endpoint_url=moto.endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    base = client.describe_images(Owners=["099720109477"], Filters=[{"Name": "name", "Values": [SOURCE_AMI]}])
    source = client.run_instances(ImageId=base["Images"][0]["ImageId"], MinCount=1, MaxCount=1)
    client.source = source["Instances"][0]["InstanceId"]
    yield client


def _image(ec2: Any, name: str, project: str | None) -> str:
    tags = [{"Key": PROJECT_TAG, "Value": PROJECT}]
    if project:
        tags.append({"Key": "dcp:distributed-project", "Value": project})
    return str(ec2.create_image(InstanceId=ec2.source, Name=name,
                                TagSpecifications=[{"ResourceType": "image", "Tags": tags}])["ImageId"])


def test_launch_node_picks_the_projects_own_ami(ec2: Any) -> None:
    dcp = _image(ec2, "dcp-control-node-20260101-000000", None)            # built before the tag existed
    fiji = _image(ec2, "dcp-control-node-20260102-000000", "Distributed-Fiji")
    assert node.newest_image(ec2, "dcp-control-node", "fiji")["ImageId"] == fiji
    assert node.newest_image(ec2, "dcp-control-node")["ImageId"] == dcp     # not Fiji's, though newer
    with pytest.raises(node.NodeError, match=r"Distributed-OMEZarrCreator.*--project omezarr"):
        node.newest_image(ec2, "dcp-control-node", "omezarr")
    assert node.NodeConfig.from_options(region="us-east-1", project="Distributed-Fiji").project == "fiji"
    with pytest.raises(node.NodeError, match="--project"):
        node.NodeConfig.from_options(region="us-east-1", project="imagej")


def test_cleanup_keep_counts_each_project(ec2: Any) -> None:
    dcp = [_image(ec2, f"dcp-control-node-2026010{i}-000000", None) for i in range(3)]
    ds = [_image(ec2, f"dcp-control-node-2026020{i}-000000", "Distributed-Something") for i in range(2)]
    found = cleanup.find_leftovers(ec2, "dcp-control-node", keep=2)
    gone = {image for image, _ in found.images}
    assert len(gone & set(dcp)) == 1 and not gone & set(ds)   # DS's two are its newest two: kept
