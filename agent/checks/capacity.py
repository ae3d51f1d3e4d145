"""Z: spot quota, bid vs market, whether the container fits the machine, and capacity resilience."""

from __future__ import annotations

from agent import gates
from agent.context import Context
from agent.facts import ec2, quotas
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

QUOTAS = {"standard": ("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests"),
          "g": ("L-3819A6DF", "All G and VT Spot Instance Requests"),
          "p": ("L-7212CCBC", "All P Spot Instance Requests")}


def _subnets(ctx: Context) -> ec2.Resources:
    return ec2.subnets(ctx, tuple(ctx.fleet.subnets()) if ctx.fleet else ())


def _family(itype: str) -> str:
    letter = itype[:1].lower()
    if letter in ("g",) or itype.startswith("vt"):
        return "g"
    if letter == "p":
        return "p"
    return "standard"


@check("Z01", "quota.spot-vcpu", "The spot vCPU quota covers the cluster", Severity.BLOCKER,
       needs=(*gates.AWS, gates.CONFIG), actions=(*quotas.ec2_quota.actions, "ec2:DescribeInstanceTypes",
                                                  "ec2:DescribeInstances"))
def spot_quota(ctx: Context) -> Finding:
    types = ctx.machine_types()
    machines = ctx.config.get("CLUSTER_MACHINES")
    if not types or not isinstance(machines, int):
        raise Skip("MACHINE_TYPE or CLUSTER_MACHINES is not usable (see config.types)")
    family = _family(types[0])
    code, name = QUOTAS[family]
    ctx.facts.prefetch(quotas.ec2_quota, code)
    ctx.facts.prefetch(ec2.running_spot_types)
    info = ec2.instance_types(ctx, tuple(types))
    if not info:
        raise Skip("no known instance type in MACHINE_TYPE")
    need = machines * max(int(i["VCpuInfo"]["DefaultVCpus"]) for i in info.values())
    quota = quotas.ec2_quota(ctx, code)
    fix = (f"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code {code} "
           f"--desired-value {need} --region {ctx.region}  (Service Quotas console → Amazon EC2 → \"{name}\")")
    if need > quota:
        return fail(f"the cluster needs {need} spot vCPUs ({machines} × {types[0]}…) but the quota is {quota:.0f} "
                    "(new accounts get 5): spotInstanceCountLimitExceeded", fix)
    used = 0
    running = [t for t in ec2.running_spot_types(ctx) if _family(t) == family]
    if running:
        sizes = ec2.instance_types(ctx, tuple(sorted(set(running))))
        used = sum(int(sizes[t]["VCpuInfo"]["DefaultVCpus"]) for t in running if t in sizes)
    if need + used > quota:
        return warn(f"{used} spot vCPUs already run; with {need} more the quota of {quota:.0f} is exceeded", fix)
    return ok(f"needs {need} of {quota:.0f} spot vCPUs ({used} in use)")


@check("Z02", "quota.spot-price", "MACHINE_PRICE is above the spot market", Severity.HIGH,
       needs=(gates.SUBNETS, gates.CONFIG),
       actions=("ec2:DescribeSpotPriceHistory",))
def spot_price(ctx: Context) -> Finding:
    price = ctx.config.get("MACHINE_PRICE")
    types = ctx.machine_types()
    if not isinstance(price, int | float) or isinstance(price, bool) or not types:
        raise Skip("MACHINE_PRICE or MACHINE_TYPE is not usable (see config.types)")
    if f"{price:.2f}" == "0.00":
        return fail(f"MACHINE_PRICE {price} becomes $0.00 (run.py formats it with 2 decimals)",
                    "set MACHINE_PRICE to at least 0.01")
    zones = sorted({s["AvailabilityZone"] for s in _subnets(ctx).values()})
    latest = ec2.spot_prices(ctx, tuple(types), tuple(zones))
    above = {k: v for k, v in latest.items() if v > float(price)}
    if above:
        k, v = max(above.items(), key=lambda kv: kv[1])
        return warn(f"the spot price of {k} is ${v:.4f}, above MACHINE_PRICE ${price:.2f}: the fleet may not be "
                    "fulfilled", f"raise MACHINE_PRICE above {v:.2f}")
    return ok(f"${price:.2f} is above the current spot prices" if latest else f"${price:.2f} (no price history)")


@check("Z03", "capacity.container-fits", "MEMORY and CPU_SHARES fit MACHINE_TYPE", Severity.BLOCKER,
       needs=(*gates.AWS, gates.CONFIG), actions=("ec2:DescribeInstanceTypes",))
def container_fits(ctx: Context) -> Finding:
    types = ctx.machine_types()
    mem, shares, tasks = (ctx.config.get(n) for n in ("MEMORY", "CPU_SHARES", "TASKS_PER_MACHINE"))
    if not types or not all(isinstance(v, int) for v in (mem, shares, tasks)):
        raise Skip("MACHINE_TYPE, MEMORY, CPU_SHARES or TASKS_PER_MACHINE is not usable (see config.types)")
    info = ec2.instance_types(ctx, tuple(types))
    if not info:
        raise Skip("no known instance type in MACHINE_TYPE")
    smallest = min(info.values(), key=lambda i: int(i["MemoryInfo"]["SizeInMiB"]))
    t, mib, vcpu = smallest["InstanceType"], int(smallest["MemoryInfo"]["SizeInMiB"]), int(smallest["VCpuInfo"]["DefaultVCpus"])
    want = mem * tasks
    fix = (f"set MEMORY = {int(0.92 * mib / tasks)} for {t} (DCP uses 15000 for m-class xlarge, 7500 for c-class), "
           "or lower TASKS_PER_MACHINE")
    if want > mib:
        return fail(f"{tasks} × MEMORY {mem} MiB = {want} MiB does not fit {t} ({mib} MiB): tasks are never placed", fix)
    if shares * tasks > vcpu * 1024:
        return fail(f"{tasks} × CPU_SHARES {shares} exceeds {t}'s {vcpu * 1024} CPU units", "lower CPU_SHARES "
                    "(1024 per core) or TASKS_PER_MACHINE")
    if want > 0.92 * mib:
        return warn(f"{want} MiB leaves the ECS agent under 8% of {t}'s {mib} MiB", fix)
    return ok(f"{want} MiB of {mib} MiB on {t}")


@check("Z04", "capacity.resilience", "The fleet can draw on more than one zone", Severity.LOW,
       needs=(gates.SUBNETS,), actions=("ec2:DescribeSubnets",))
def resilience(ctx: Context) -> Finding:
    zones = {s["AvailabilityZone"] for s in _subnets(ctx).values()}
    if len(zones) < 2:
        return warn(f"every launch spec is in {', '.join(zones) or 'one zone'}: one zone's spot shortage stops the run",
                    "add a launch spec per subnet in other zones (with a MACHINE_TYPE entry each)")
    return ok(f"{len(zones)} zones")


