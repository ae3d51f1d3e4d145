"""EC2 reads: the fleet's subnets, security groups, AMIs and instance types, routes, offerings, prices."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.facts.core import code_of, fact, translate
from agent.netcause import THROTTLED

if TYPE_CHECKING:
    from agent.context import Context

Resources = dict[str, dict[str, Any]]


def _by_id(ctx: Context, ids: tuple[str, ...], *, method: str, id_param: str, result: str, id_field: str,
           not_found: str, **extra: Any) -> Resources:
    """Describe-by-id: one call when every id exists, then one by one only to tell which do not (an
    unknown id fails the whole batch). Unknown ids are simply absent. Every page is read: EC2 may hand out a
    NextToken with part of the answer."""
    if not ids:
        return {}   # an empty id list would describe everything in the region
    paginator = ctx.client("ec2").get_paginator(method)

    def describe(**params: Any) -> dict[str, list[dict[str, Any]]]:
        return {result: [r for page in paginator.paginate(**params) for r in page.get(result, [])]}

    try:
        return {r[id_field]: r for r in describe(**{id_param: list(ids)}, **extra)[result]}
    except Exception as e:
        if not code_of(e).startswith(not_found):
            raise
    found: Resources = {}
    for one in ids:
        try:
            found.update({r[id_field]: r for r in describe(**{id_param: [one]}, **extra)[result]})
        except Exception as e:
            if not code_of(e).startswith(not_found):
                raise
    return found


@fact("ec2:DescribeSubnets")
def subnets(ctx: Context, ids: tuple[str, ...]) -> Resources:
    return _by_id(ctx, ids, method="describe_subnets", id_param="SubnetIds", result="Subnets",
                  id_field="SubnetId", not_found="InvalidSubnetID")


@fact("ec2:DescribeSecurityGroups")
def security_groups(ctx: Context, ids: tuple[str, ...]) -> Resources:
    return _by_id(ctx, ids, method="describe_security_groups", id_param="GroupIds", result="SecurityGroups",
                  id_field="GroupId", not_found="InvalidGroup")


@fact("ec2:DescribeImages")
def images(ctx: Context, ids: tuple[str, ...]) -> Resources:
    return _by_id(ctx, ids, method="describe_images", id_param="ImageIds", result="Images", id_field="ImageId",
                  not_found="InvalidAMIID", IncludeDeprecated=True)


@fact("ec2:DescribeInstanceTypes")
def instance_types(ctx: Context, types: tuple[str, ...]) -> Resources:
    return _by_id(ctx, types, method="describe_instance_types", id_param="InstanceTypes", result="InstanceTypes",
                  id_field="InstanceType", not_found="InvalidInstanceType")


def _pages(ctx: Context, method: str, result: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of an EC2 list, through botocore's paginator (every page EC2 hands out)."""
    pages = ctx.client("ec2").get_paginator(method).paginate(**params)
    return [r for page in pages for r in page.get(result, [])]


@fact("ec2:DescribeRouteTables")
def route_tables(ctx: Context, vpc: str) -> tuple[dict[str, Any], ...]:
    """All of a VPC's route tables (one call unless EC2 pages)."""
    return tuple(_pages(ctx, "describe_route_tables", "RouteTables", Filters=[{"Name": "vpc-id", "Values": [vpc]}]))


@fact("ec2:DescribeNatGateways")
def nat_gateways(ctx: Context, ids: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    return tuple(_pages(ctx, "describe_nat_gateways", "NatGateways", NatGatewayIds=list(ids))) if ids else ()


@fact("ec2:DescribeVpcAttribute")
def vpc_dns_support(ctx: Context, vpc: str) -> bool:
    attr = ctx.client("ec2").describe_vpc_attribute(VpcId=vpc, Attribute="enableDnsSupport")
    return bool(attr["EnableDnsSupport"]["Value"])


@fact("ec2:DescribeInstanceTypeOfferings")
def type_offerings(ctx: Context, zones: tuple[str, ...], types: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    """(instance type, zone) pairs EC2 offers among ``types`` × ``zones``."""
    offers = _pages(ctx, "describe_instance_type_offerings", "InstanceTypeOfferings",
                    LocationType="availability-zone", Filters=[{"Name": "location", "Values": list(zones)},
                                                               {"Name": "instance-type", "Values": list(types)}])
    return frozenset((o["InstanceType"], o["Location"]) for o in offers)


@fact("ec2:DescribeKeyPairs")
def key_pair_exists(ctx: Context, name: str) -> bool:
    try:
        ctx.client("ec2").describe_key_pairs(KeyNames=[name])
    except Exception as e:
        if code_of(e) == "InvalidKeyPair.NotFound":
            return False
        raise
    return True


@fact("ec2:DescribeSnapshots")
def snapshot_exists(ctx: Context, snapshot: str) -> bool:
    try:
        ctx.client("ec2").describe_snapshots(SnapshotIds=[snapshot])
    except Exception as e:
        if code_of(e).startswith("InvalidSnapshot"):
            return False
        raise
    return True


@fact("ec2:DescribeSpotPriceHistory")
def spot_prices(ctx: Context, types: tuple[str, ...], zones: tuple[str, ...]) -> dict[str, float]:
    """The latest Linux spot price per "type in zone"."""
    hist = _pages(ctx, "describe_spot_price_history", "SpotPriceHistory",
                  InstanceTypes=list(types), ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
                  StartTime=datetime.now(UTC),
                  Filters=[{"Name": "availability-zone", "Values": list(zones)}] if zones else [])
    latest: dict[str, float] = {}
    for h in hist:
        latest.setdefault(f"{h['InstanceType']} in {h['AvailabilityZone']}", float(h["SpotPrice"]))
    return latest


_LIVE = {"Name": "instance-state-name", "Values": ["pending", "running"]}


@fact("ec2:DescribeInstances")
def running_spot_types(ctx: Context) -> tuple[str, ...]:
    """Instance types of every pending or running spot instance in the region, narrowed by EC2 itself (the
    ``instance-lifecycle`` filter): a shared account's on-demand instances are never sent.

    Asked once without retries: an endpoint that lacks the filter answers HTTP 500 (moto 5.2.5 does, with a
    page botocore cannot parse; AWS supports the filter, and rig/pager.py stands in for it in the tests), and retrying that with backoff would cost Z01 seconds. Then, and when EC2 throttles, the
    same question is asked the long way, every live instance with standard retries, and filtered here; so a
    real 5xx outage still ends as "no answer" (the second read fails too), never as a wrong count."""
    def types(pages: Any) -> tuple[str, ...]:
        return tuple(i["InstanceType"] for page in pages for r in page.get("Reservations", [])
                     for i in r.get("Instances", []) if i.get("InstanceLifecycle") == "spot")

    try:
        return types(ctx.client("ec2", retries=1).get_paginator("describe_instances").paginate(
            Filters=[_LIVE, {"Name": "instance-lifecycle", "Values": ["spot"]}]))
    except Exception as e:
        err = translate(e)
        # moto's 500 carries a page that is not XML: botocore's ResponseParserError, with no status.
        if err is None or not (err.code in THROTTLED or (err.status or 0) >= 500 or err.code == "ResponseParserError"):
            raise
    return types(ctx.client("ec2").get_paginator("describe_instances").paginate(Filters=[_LIVE]))


@fact("ec2:RunInstances", "iam:PassRole")
def dry_run_launch(ctx: Context, request: str) -> tuple[str, str]:
    """EC2's answer to a DryRun RunInstances (``request`` is the JSON of its arguments): (code, message)."""
    try:
        ctx.client("ec2").run_instances(DryRun=True, **json.loads(request))
    except Exception as e:
        code = code_of(e)
        if not code or code in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
            raise
        return code, str(getattr(e, "response", {}).get("Error", {}).get("Message", ""))
    return "", ""


LIVE_FLEET_STATES = ("submitted", "active", "modifying")


@fact("ec2:DescribeSpotFleetRequests")
def active_spot_fleets(ctx: Context) -> tuple[dict[str, Any], ...]:
    """Every spot fleet request in the region that can still run instances (submitted, active, modifying).
    DescribeSpotFleetRequests has no filters: every page is read (AWS answers up to 1000 a page; cancelled
    fleets stay listed for 48 hours), and only the live ones are kept."""
    pages = ctx.client("ec2").get_paginator("describe_spot_fleet_requests").paginate()
    return tuple(f for page in pages for f in page.get("SpotFleetRequestConfigs", [])
                 if f.get("SpotFleetRequestState") in LIVE_FLEET_STATES)


@fact("ec2:DescribeSpotFleetRequests")
def spot_fleets(ctx: Context, ids: tuple[str, ...]) -> tuple[dict[str, Any], ...]:
    """Spot fleet requests by id, whatever their state; unknown ids (deleted 48 hours after they were
    cancelled) are absent."""
    if not ids:
        return ()   # no ids would list every fleet
    try:
        return tuple(_pages(ctx, "describe_spot_fleet_requests", "SpotFleetRequestConfigs",
                            SpotFleetRequestIds=list(ids)))
    except Exception as e:
        if not code_of(e).startswith("InvalidSpotFleetRequestId"):
            raise
    found: list[dict[str, Any]] = []
    for one in ids if len(ids) > 1 else ():
        found += spot_fleets(ctx, (one,))
    return tuple(found)


@fact("ec2:DescribeSpotFleetInstances")
def fleet_instances(ctx: Context, fleet_id: str) -> tuple[dict[str, Any], ...]:
    """The fleet's running instances (InstanceId, InstanceType)."""
    pages = ctx.client("ec2").get_paginator("describe_spot_fleet_instances").paginate(SpotFleetRequestId=fleet_id)
    return tuple(i for page in pages for i in page.get("ActiveInstances", []))


@fact("ec2:DescribeInstances")
def instances(ctx: Context, ids: tuple[str, ...]) -> Resources:
    """Instances by id (their zone, type, state and launch time); unknown ids are absent."""
    if not ids:
        return {}
    found: Resources = {}
    try:
        for page in ctx.client("ec2").get_paginator("describe_instances").paginate(InstanceIds=list(ids)):
            for r in page.get("Reservations", []):
                found.update({i["InstanceId"]: i for i in r.get("Instances", [])})
    except Exception as e:
        if not code_of(e).startswith("InvalidInstanceID"):   # one unknown id fails the batch: none then
            raise
    return found


@fact("ec2:DescribeVpcs")
def default_vpc(ctx: Context) -> str | None:
    """The region's default VPC id, or None when the account has none (deleted, or an old EC2-Classic one)."""
    vpcs = ctx.client("ec2").describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}]).get("Vpcs", [])
    return str(vpcs[0]["VpcId"]) if vpcs else None


@fact("ec2:DescribeSecurityGroups")
def group_named(ctx: Context, vpc: str, name: str) -> dict[str, Any] | None:
    """The security group called ``name`` in ``vpc`` (names are unique per VPC), or None."""
    groups = ctx.client("ec2").describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [vpc]}, {"Name": "group-name", "Values": [name]}]).get("SecurityGroups", [])
    return dict(groups[0]) if groups else None


# -- the reads `dcp-agent fleet` adds (it chooses a VPC and its subnets; default_vpc and group_named above) ---

@fact("ec2:DescribeVpcs")
def vpcs(ctx: Context, ids: tuple[str, ...]) -> Resources:
    """VPCs by id; unknown ids are absent."""
    return _by_id(ctx, ids, method="describe_vpcs", id_param="VpcIds", result="Vpcs", id_field="VpcId",
                  not_found="InvalidVpcID")


@fact("ec2:DescribeSubnets")
def vpc_subnets(ctx: Context, vpc: str) -> Resources:
    """Every subnet of a VPC, by id (every page)."""
    pages = ctx.client("ec2").get_paginator("describe_subnets").paginate(
        Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    return {s["SubnetId"]: s for page in pages for s in page.get("Subnets", [])}
