"""N: the fleet's subnets, security groups, internet path, instance types and key pair."""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Any

from agent import flavours, gates
from agent.context import Context
from agent.facts import ec2
from agent.fleetfile import assign_ip_off, spec_subnets
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

NET = (*gates.AWS, gates.FLEET)


def _subnets(ctx: Context) -> ec2.Resources:
    return ec2.subnets(ctx, tuple(ctx.fleet.subnets()) if ctx.fleet else ())


def _groups(ctx: Context) -> ec2.Resources:
    return ec2.security_groups(ctx, tuple(ctx.fleet.security_groups()) if ctx.fleet else ())


@check("N01", "ec2.subnets", "The fleet's subnets exist in AWS_REGION", Severity.BLOCKER, needs=NET,
       actions=("ec2:DescribeSubnets",), provides=gates.SUBNETS)
def subnets(ctx: Context) -> Finding:
    assert ctx.fleet is not None
    wanted = ctx.fleet.subnets()
    if not wanted:
        return fail("the fleet file names no subnet", "set NetworkInterfaces[0].SubnetId in each launch spec")
    found = _subnets(ctx)
    missing = [s for s in wanted if s not in found]
    if missing:
        return fail(f"{', '.join(missing)} not found in {ctx.region} (\"One of the provided subnets was not valid\")",
                    f"aws ec2 describe-subnets --region {ctx.region} lists yours; put one in the fleet file")
    return ok(", ".join(f"{s} ({found[s]['AvailabilityZone']})" for s in wanted))


@check("N02", "ec2.security-groups", "The security groups exist in the subnets' VPC", Severity.BLOCKER,
       needs=(subnets,), actions=("ec2:DescribeSecurityGroups",),
       cure="Without a fleet file: creates the group ``dcp-workers`` in the default VPC (which "
            "``dcp-agent fleet`` then uses).")
def security_groups(ctx: Context) -> Finding:
    assert ctx.fleet is not None
    wanted = ctx.fleet.security_groups()
    if not wanted:
        return fail("the fleet file names no security group", "set NetworkInterfaces[0].Groups")
    found = _groups(ctx)
    missing = [g for g in wanted if g not in found]
    if missing:
        return fail(f"{', '.join(missing)} not found in {ctx.region}", "put the id of your worker security group "
                    "(aws ec2 describe-security-groups) in the fleet file")
    vpcs = {s["VpcId"] for s in _subnets(ctx).values()}
    other = [g for g in wanted if found[g].get("VpcId") not in vpcs]
    if other:
        return fail(f"{', '.join(other)} is not in the subnets' VPC {', '.join(sorted(vpcs))}",
                    "use a security group from the same VPC as the subnets")
    return ok(", ".join(wanted))


def _allows(perms: list[dict[str, Any]], port: int, cidr_ok: Any) -> bool:
    for p in perms:
        proto = p.get("IpProtocol")
        if proto not in ("-1", "tcp", "6"):
            continue
        if proto != "-1" and not (p.get("FromPort", 0) <= port <= p.get("ToPort", 65535)):
            continue
        ranges = [r.get("CidrIp") for r in p.get("IpRanges", [])] + [r.get("CidrIpv6") for r in p.get("Ipv6Ranges", [])]
        if any(isinstance(c, str) and cidr_ok(c) for c in ranges) or (p.get("PrefixListIds") and cidr_ok(None)):
            return True
    return False


@check("N03", "ec2.sg-egress-https", "Workers may reach HTTPS (ECS, S3, SQS, Docker Hub)", Severity.BLOCKER,
       needs=(security_groups,), actions=("ec2:DescribeSecurityGroups",))
def sg_egress(ctx: Context) -> Finding:
    groups = _groups(ctx)
    perms = [p for g in groups.values() for p in g.get("IpPermissionsEgress", [])]
    if not _allows(perms, 443, lambda c: c is None or c in ("0.0.0.0/0", "::/0")):
        return fail(f"{', '.join(groups)} allow no outbound HTTPS to the internet: the ECS agent cannot register",
                    f"aws ec2 authorize-security-group-egress --group-id {next(iter(groups))} --protocol tcp "
                    "--port 443 --cidr 0.0.0.0/0")
    return ok("outbound 443 allowed")


def _client_ip() -> str | None:
    conn = os.environ.get("SSH_CONNECTION", "").split()
    return conn[0] if conn else None


@check("N04", "ec2.sg-ssh-ingress", "SSH to workers is open from your address", Severity.LOW,
       needs=(security_groups,), actions=("ec2:DescribeSecurityGroups",),
       cure="Adds one tcp/22 rule for your address to the fleet's security group.")
def sg_ssh(ctx: Context) -> Finding:
    groups = _groups(ctx)
    perms = [p for g in groups.values() for p in g.get("IpPermissions", [])]
    ip = _client_ip()

    def covers(cidr: str | None) -> bool:
        if cidr is None or ip is None:
            return cidr is not None
        try:
            return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return False

    if not _allows(perms, 22, covers):
        who = f"from {ip}" if ip else "from anywhere"
        return warn(f"no inbound SSH {who} (only needed to log into workers)",
                    f"aws ec2 authorize-security-group-ingress --group-id {next(iter(groups))} --protocol tcp "
                    f"--port 22 --cidr {ip or '<your-ip>'}/32")
    return ok(f"SSH allowed from {ip}" if ip else "SSH allowed")


def _rewritten(ctx: Context, spec: dict[str, Any], index: int) -> bool:
    """Whether this project's run.py turns this specification's public address off (ASSIGN_IP, by the
    project's own reading of it: see agent.flavours)."""
    off = ctx.flavour.turns_public_ip_off(ctx.config.get("ASSIGN_IP"))
    return assign_ip_off(spec, index, "False" if off else "True")


def _route_table(ctx: Context, subnet: dict[str, Any]) -> dict[str, Any] | None:
    """The subnet's own route table, else its VPC's main one (all of the VPC's tables in one call)."""
    tables = ec2.route_tables(ctx, subnet["VpcId"])
    for table in tables:
        if any(a.get("SubnetId") == subnet["SubnetId"] for a in table.get("Associations", [])):
            return dict(table)
    for table in tables:
        if any(a.get("Main") for a in table.get("Associations", [])):
            return dict(table)
    return None


@check("N05", "ec2.worker-internet-path", "Workers can reach the internet (public IP + IGW, or NAT)",
       Severity.BLOCKER, needs=(subnets, gates.CONFIG),
       actions=("ec2:DescribeRouteTables", "ec2:DescribeNatGateways"))
def internet_path(ctx: Context) -> Finding:
    """Each launch specification as ``run.py`` sends it: ``ASSIGN_IP`` compared in any case, and its
    ``'False'`` applied to specification 0's interface 0 only, and only when ``NetworkInterfaces`` exists; in
    every subnet a specification lists (a comma-separated ``SubnetId`` puts workers in any of them)."""
    assert ctx.fleet is not None
    found = _subnets(ctx)
    assign_ip = ctx.config.get("ASSIGN_IP")
    via_nat = []
    for index, spec in enumerate(ctx.fleet.specs):
        nics = spec.get("NetworkInterfaces") if isinstance(spec.get("NetworkInterfaces"), list) else [{}]
        nic = nics[0] if nics and isinstance(nics[0], dict) else {}
        # Interface 0's subnet, else the top-level SubnetId, which may list several: workers land in any of them.
        chosen = nic.get("SubnetId") or spec.get("SubnetId")
        listed = [s.strip() for s in chosen.split(",")] if isinstance(chosen, str) else []
        rewritten = _rewritten(ctx, spec, index)
        for sid in [s for s in listed if s in found]:
            subnet = found[sid]
            if rewritten:
                public = False
            elif "AssociatePublicIpAddress" in nic:
                public = bool(nic["AssociatePublicIpAddress"])
            else:
                public = bool(subnet.get("MapPublicIpOnLaunch"))
            table = _route_table(ctx, subnet)
            routes = [r for r in (table or {}).get("Routes", []) if r.get("DestinationCidrBlock") == "0.0.0.0/0"
                      and r.get("State", "active") == "active"]
            igw = any(str(r.get("GatewayId", "")).startswith("igw-") for r in routes)
            nat_ids = [r["NatGatewayId"] for r in routes if r.get("NatGatewayId")]
            other = any(r.get("TransitGatewayId") or r.get("InstanceId") or r.get("NetworkInterfaceId") for r in routes)
            if public:
                if not igw:
                    return fail(f"{sid} has no 0.0.0.0/0 route to an internet gateway: workers never join ECS",
                                "add a 0.0.0.0/0 → igw-… route to the subnet's route table")
                continue
            nat_ok = False
            if nat_ids:
                nat_ok = any(n.get("State") == "available" for n in ec2.nat_gateways(ctx, tuple(nat_ids)))
            if not (nat_ok or other):
                f = ctx.flavour
                if rewritten and not f.is_dcp:
                    keep = f.assign_ip_for(True)
                    return fail(f"workers in {sid} get no public IP: ASSIGN_IP is {assign_ip!r}, which {f.name}'s "
                                f"run.py reads as 'no public address' on launch specification 0 (the inverse of "
                                f"DCP's, and of what its own step_1_configuration.md says), and the subnet has no "
                                "NAT route: they stay 'nameless' and never take jobs",
                                f"set ASSIGN_IP = '{keep}' in config.py ({f.name}'s run.py then keeps the fleet "
                                "file's AssociatePublicIpAddress: true), or route the subnet through a NAT gateway")
                if rewritten and not ctx.sure:   # DS's run.py reads ASSIGN_IP the other way round
                    return warn(f"workers in {sid} may get no public IP: DCP's run.py reads ASSIGN_IP "
                                f"{assign_ip!r} as 'no public address', Distributed-Something's the other way "
                                f"round, and the subnet has no NAT route; {flavours.unsure(ctx.recognised)}",
                                flavours.UNSURE_FIX)
                why = ("ASSIGN_IP is 'False', which run.py applies to launch specification 0" if rewritten else
                       "the fleet file sets AssociatePublicIpAddress: false (as DCP's example does)"
                       if nic.get("AssociatePublicIpAddress") is False else "the subnet gives no public IP")
                return fail(f"workers in {sid} get no public IP ({why}) and the subnet has no NAT route: they stay "
                            "'nameless' and never take jobs", "set \"AssociatePublicIpAddress\": true in the fleet "
                            "file's NetworkInterfaces, or route the subnet through a NAT gateway")
            via_nat.append(sid)
    via_nat = list(dict.fromkeys(via_nat))
    if via_nat:
        return warn(f"{', '.join(via_nat)} reach the internet through NAT: all workers share one IP, and Docker "
                    "Hub allows 10 anonymous pulls an hour per IP", "use public IPs, or an ECR pull-through cache")
    return ok("public IPs with an internet gateway route")


@check("N06", "ec2.vpc-dns", "The VPC resolves DNS", Severity.HIGH, needs=(subnets,),
       actions=("ec2:DescribeVpcAttribute",))
def vpc_dns(ctx: Context) -> Finding:
    for vpc in sorted({s["VpcId"] for s in _subnets(ctx).values()}):
        if not ec2.vpc_dns_support(ctx, vpc):
            return fail(f"{vpc} has DNS resolution turned off: workers cannot resolve AWS endpoints",
                        f"aws ec2 modify-vpc-attribute --vpc-id {vpc} --enable-dns-support '{{\"Value\":true}}'")
    return ok("enableDnsSupport on")


@check("N07", "ec2.subnet-free-ips", "The subnets have addresses for every machine", Severity.HIGH,
       needs=(subnets, gates.CONFIG), actions=("ec2:DescribeSubnets",))
def free_ips(ctx: Context) -> Finding:
    machines = ctx.config.get("CLUSTER_MACHINES")
    if not isinstance(machines, int):
        raise Skip("CLUSTER_MACHINES is not a number")
    free = sum(int(s.get("AvailableIpAddressCount", 0)) for s in _subnets(ctx).values())
    if free < machines:
        return fail(f"the subnets have {free} free addresses for {machines} machines", "add subnets (one launch "
                    "spec each) or free addresses")
    if free < 1.2 * machines:
        return warn(f"only {free} free addresses for {machines} machines", "add another subnet for headroom")
    return ok(f"{free} free addresses")


@check("N08", "ec2.instance-types", "MACHINE_TYPE is offered, spot-capable and x86_64 in the subnets' zones",
       Severity.BLOCKER, needs=(subnets, gates.CONFIG),
       actions=("ec2:DescribeInstanceTypes", "ec2:DescribeInstanceTypeOfferings"))
def instance_types(ctx: Context) -> Finding:
    """Each launch specification's type in its own subnets' zones: run.py (startCluster) sets launch
    specification i's InstanceType to MACHINE_TYPE[i], so a type is launched only where its specification's
    subnets are (its ``SubnetId``, comma-separated, and its network interfaces'; types beyond the specifications
    are ignored, fewer is an IndexError: both F04's). A type missing from some of those zones is a warning (the
    fleet sets that pool aside, ``launchSpecTemporarilyBlacklisted``, and launches in the others); missing from
    all of them, a failure."""
    assert ctx.fleet is not None
    types = ctx.machine_types()
    if not types:
        raise Skip("MACHINE_TYPE is not a list of names (see config.types)")
    pairs = list(zip(types, ctx.fleet.specs, strict=False))
    if not pairs:
        raise Skip("the fleet file has no launch specification")
    used = list(dict.fromkeys(t for t, _ in pairs))
    info = ec2.instance_types(ctx, tuple(used))
    unknown = [t for t in used if t not in info]
    if unknown:
        return fail(f"{', '.join(unknown)} is not an EC2 instance type", "fix MACHINE_TYPE in config.py")
    for t, i in info.items():
        if "spot" not in i.get("SupportedUsageClasses", []):
            return fail(f"{t} cannot run as spot", "choose a type that supports spot")
        if "x86_64" not in i.get("ProcessorInfo", {}).get("SupportedArchitectures", []):
            return fail(f"{t} is not x86_64; the DCP image is built for linux/amd64", "choose an x86_64 type "
                        "(m5, c5, r5, …)")
    found = _subnets(ctx)
    wanted = [(index, t, sorted({found[s]["AvailabilityZone"] for s in spec_subnets(spec) if s in found}))
              for index, (t, spec) in enumerate(pairs)]
    zones = sorted({z for _, _, zs in wanted for z in zs})
    offered = ec2.type_offerings(ctx, tuple(zones), tuple(used))
    gaps = [f"{t} in {z} (launch specification {index})" for index, t, zs in wanted for z in zs
            if (t, z) not in offered]
    fix = ("give each launch specification subnets in zones that offer its MACHINE_TYPE (the same position in "
           "the list), or choose another type")
    # A pool (type, zone) the type is not offered in is set aside by the fleet (launchSpecTemporarilyBlacklisted),
    # which launches in its specification's other zones; only a specification with no zone left launches nothing.
    stranded = [f"{t} (launch specification {index})" for index, t, zs in wanted
                if zs and not any((t, z) in offered for z in zs)]
    if stranded:
        return fail(f"not offered in any zone of its subnets: {', '.join(stranded)}", fix)
    if gaps:
        return warn(f"not offered: {', '.join(gaps)}; the fleet launches those in their other zones", fix)
    return ok("; ".join(f"{t} in {', '.join(zs)}" for _, t, zs in wanted))


@check("N09", "ec2.key-pair", "The fleet's key pair exists in AWS_REGION", Severity.HIGH, needs=NET,
       actions=("ec2:DescribeKeyPairs",),
       cure="Imports ``~/.ssh/<name>.pub`` as the key pair, or creates one and saves ``~/.ssh/<name>.pem`` "
            "(mode 0600), never over an existing file.")
def key_pair(ctx: Context) -> Finding:
    assert ctx.fleet is not None
    names = sorted({s["KeyName"] for s in ctx.fleet.specs if isinstance(s.get("KeyName"), str)})
    if not names:
        return warn("the fleet file names no KeyName: you cannot SSH into workers", "add \"KeyName\" to each launch spec")
    for name in names:
        if not ec2.key_pair_exists(ctx, name):
            return fail(f"key pair {name!r} does not exist in {ctx.region}",
                        f"aws ec2 import-key-pair --key-name {name} --public-key-material fileb://~/.ssh/{name}.pub "
                        f"--region {ctx.region}")
    ssh_key = ctx.config.get("SSH_KEY_NAME")
    if isinstance(ssh_key, str) and ssh_key.removesuffix(".pem") not in names:
        return warn(f"the fleet uses key {', '.join(names)} but SSH_KEY_NAME is {ssh_key!r}",
                    f"set KeyName to {ssh_key.removesuffix('.pem')!r} in the fleet file, or SSH_KEY_NAME to "
                    f"'{names[0]}.pem'")
    return ok(", ".join(names))


@check("N10", "ec2.dry-run-launch", "A DryRun launch of one worker succeeds (opt-in)", Severity.HIGH,
       needs=(subnets, gates.CONFIG), actions=("ec2:RunInstances", "iam:PassRole"), opt_in=True,
       blind=("Not sent: run.py's user data, ``Placement``, ``EbsOptimized``, ``Monitoring``.",))
def dry_run(ctx: Context) -> Finding:
    """One instance of launch specification 0 as run.py's startCluster sends it: InstanceType MACHINE_TYPE[0],
    the second device sized EBS_VOL_SIZE, ASSIGN_IP 'False' on interface 0, and the specification's own
    subnet and security groups (RunInstances takes one subnet: the first of a comma-separated list)."""
    assert ctx.fleet is not None
    spec = ctx.fleet.specs[0]
    types = ctx.machine_types() or ["m5.xlarge"]
    bdms = [dict(m) for m in spec.get("BlockDeviceMappings", [])]
    if len(bdms) > 1 and isinstance(ctx.config.get("EBS_VOL_SIZE"), int):
        bdms[1] = dict(bdms[1], Ebs=dict(bdms[1].get("Ebs", {}), VolumeSize=ctx.config.get("EBS_VOL_SIZE")))
    profile = spec.get("IamInstanceProfile")
    kwargs: dict[str, Any] = {
        "ImageId": spec.get("ImageId"), "InstanceType": types[0], "MinCount": 1, "MaxCount": 1,
        "IamInstanceProfile": dict(profile) if isinstance(profile, dict) else {"Arn": None},
        "BlockDeviceMappings": bdms, "InstanceMarketOptions": {"MarketType": "spot"}}
    if spec.get("KeyName"):
        kwargs["KeyName"] = spec["KeyName"]
    nics = spec.get("NetworkInterfaces")
    if isinstance(nics, list) and nics:
        nics = [dict(n) if isinstance(n, dict) else n for n in nics]
        if _rewritten(ctx, spec, 0):
            nics[0]["AssociatePublicIpAddress"] = False
    if nics:
        kwargs["NetworkInterfaces"] = nics
    listed = spec.get("SubnetId")
    if isinstance(listed, str) and (subnet := listed.split(",")[0].strip()):
        kwargs["SubnetId"] = subnet
    raw_groups = spec.get("SecurityGroups")
    groups = [g for g in raw_groups if isinstance(g, dict)] if isinstance(raw_groups, list) else []
    if ids := [g["GroupId"] for g in groups if g.get("GroupId")]:
        kwargs["SecurityGroupIds"] = ids
    if names := [g["GroupName"] for g in groups if g.get("GroupName") and not g.get("GroupId")]:
        kwargs["SecurityGroups"] = names
    code, msg = ec2.dry_run_launch(ctx, json.dumps(kwargs, sort_keys=True, default=str))
    if code == "DryRunOperation":
        return ok("EC2 accepted the launch (DryRun)")
    if code:
        return fail(f"EC2 refused the launch: {code}: {msg}"[:300], "fix what the message names in the fleet "
                    "file or config.py")
    return warn("EC2 launched without DryRunOperation?", "check the endpoint")
