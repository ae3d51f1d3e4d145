"""Z: spot quota, bid vs market, whether the container fits the machine, and capacity resilience."""

from __future__ import annotations

from agent import gates
from agent.context import Context
from agent.facts import ec2, quotas
from agent.model import Finding, Severity, Skip, fail, ok, warn
from agent.registry import check

# EC2's spot vCPU quotas, one per instance family (Service Quotas, service code ec2; the EC2 User Guide's
# "Spot Instance quotas"). Types of the standard letters, and any other, count against the standard one.
QUOTAS = {"standard": ("L-34B43A08", "All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests"),
          "g": ("L-3819A6DF", "All G and VT Spot Instance Requests"),
          "p": ("L-7212CCBC", "All P Spot Instance Requests"),
          "inf": ("L-B5D1601B", "All Inf Spot Instance Requests"),
          "trn": ("L-6B0D517C", "All Trn Spot Instance Requests"),
          "dl": ("L-85EED4F7", "All DL Spot Instance Requests"),
          "f": ("L-88CF9481", "All F Spot Instance Requests"),
          "x": ("L-E3A00192", "All X Spot Instance Requests")}
# Longest prefix first: dl1 is DL (d3 is standard), inf2 is Inf (i4i is standard), trn1 is Trn (t3 standard).
_PREFIXES = (("inf", "inf"), ("trn", "trn"), ("dl", "dl"), ("vt", "g"), ("g", "g"), ("p", "p"), ("f", "f"),
             ("x", "x"))


def _subnets(ctx: Context) -> ec2.Resources:
    return ec2.subnets(ctx, tuple(ctx.fleet.subnets()) if ctx.fleet else ())


def _family(itype: str) -> str:
    name = itype.lower()
    return next((family for prefix, family in _PREFIXES if name.startswith(prefix)), "standard")


def _fleet_types(ctx: Context) -> tuple[list[str], str]:
    """The MACHINE_TYPEs the fleet request carries (run.py pairs them with the launch specifications by index:
    every one when there is no usable fleet file) and its allocation strategy."""
    types = ctx.machine_types()
    if ctx.fleet and not ctx.fleet.error and ctx.fleet.specs:
        types = types[:len(ctx.fleet.specs)] or types
        return types, str(ctx.fleet.doc.get("AllocationStrategy", "lowestPrice"))
    return types, "lowestPrice"


@check("Z01", "quota.spot-vcpu", "The spot vCPU quotas cover the cluster", Severity.BLOCKER,
       needs=(*gates.AWS, gates.CONFIG), actions=(*quotas.ec2_quota.actions, "ec2:DescribeInstanceTypes",
                                                  "ec2:DescribeInstances"),
       cure="With ``--request-quota``: files the spot vCPU quota increase Z01 computes (once: an open "
            "request for as much is not filed again).",
       blind=("Open spot requests of other tools are not counted.",))
def spot_quota(ctx: Context) -> Finding:
    """Each spot family's need against its own vCPU quota (standard, G/VT, P, Inf, Trn, DL, F, X; any other
    type counts as standard). The need is a worst case: under any allocation strategy but ``diversified``, the
    fleet may put all ``CLUSTER_MACHINES`` in one pool, so each family is asked ``CLUSTER_MACHINES`` × its
    largest type; under ``diversified``, each launch specification's even share. Every ``MACHINE_TYPE`` the
    request carries counts (with a fleet file, those paired with a launch specification). In use means
    running or pending spot instances."""
    types, strategy = _fleet_types(ctx)
    machines = ctx.config.get("CLUSTER_MACHINES")
    if not types or not isinstance(machines, int) or isinstance(machines, bool):
        raise Skip("MACHINE_TYPE or CLUSTER_MACHINES is not usable (see config.types)")
    families = sorted({_family(t) for t in types}, key=list(QUOTAS).index)
    for family in families:
        ctx.facts.prefetch(quotas.ec2_quota, QUOTAS[family][0])
    ctx.facts.prefetch(ec2.running_spot_types)
    info = ec2.instance_types(ctx, tuple(dict.fromkeys(types)))
    if not info:
        raise Skip("no known instance type in MACHINE_TYPE")
    vcpus = {t: int(i["VCpuInfo"]["DefaultVCpus"]) for t, i in info.items()}
    # What the fleet may ask of each family. diversified spreads TargetCapacity evenly over the launch
    # specifications; every other strategy may place all CLUSTER_MACHINES in one pool of any of them.
    need: dict[str, int] = {}
    largest: dict[str, str] = {}
    share = -(-machines // len(types))
    for family in families:
        mine = [t for t in types if _family(t) == family and t in vcpus]
        if not mine:
            continue
        largest[family] = max(mine, key=lambda t: vcpus[t])
        worst = machines * vcpus[largest[family]]
        need[family] = min(worst, sum(share * vcpus[t] for t in mine)) if strategy == "diversified" else worst
    running = ec2.running_spot_types(ctx)
    in_use = sorted({t for t in running if _family(t) in need})
    sizes = ec2.instance_types(ctx, tuple(in_use)) if in_use else {}
    used = {f: sum(int(sizes[t]["VCpuInfo"]["DefaultVCpus"]) for t in running if _family(t) == f and t in sizes)
            for f in need}
    quota = {f: quotas.ec2_quota(ctx, QUOTAS[f][0]) for f in need}

    def fix(fams: list[str], extra: dict[str, int]) -> str:
        return "; ".join(f"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code "
                         f"{QUOTAS[f][0]} --desired-value {need[f] + extra.get(f, 0)} --region {ctx.region}  "
                         f"(Service Quotas console → Amazon EC2 → \"{QUOTAS[f][1]}\")" for f in fams)

    over = [f for f in need if need[f] > quota[f]]
    if over:
        parts = [f"{need[f]} spot vCPUs of \"{QUOTAS[f][1]}\" ({QUOTAS[f][0]}: {machines} × {largest[f]}) but "
                 f"its quota is {quota[f]:.0f}" for f in over]
        return fail(f"the cluster may need {'; '.join(parts)}: spotInstanceCountLimitExceeded, and startCluster "
                    "cancels the fleet on that error" + (" (new accounts get 5 standard vCPUs)"
                                                         if "standard" in over else ""), fix(over, {}))
    full = [f for f in need if need[f] + used[f] > quota[f]]
    if full:
        parts = [f"{used[f]} of \"{QUOTAS[f][1]}\" ({quota[f]:.0f}) already run, {need[f]} more exceed it"
                 for f in full]
        return warn("spot vCPUs: " + "; ".join(parts), fix(full, used))
    return ok("; ".join(f"needs {need[f]} of {quota[f]:.0f} {QUOTAS[f][1]} vCPUs ({used[f]} in use)" for f in need))


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
    if ctx.flavour.task_cpu is not None:   # run.py's own "cpu" (Distributed-Fiji: 1024), not CPU_SHARES
        shares = ctx.flavour.task_cpu
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
        if ctx.flavour.task_cpu is not None:
            return fail(f"{tasks} tasks × {shares} CPU units ({ctx.flavour.name}'s run.py sets \"cpu\": {shares}) "
                        f"exceed {t}'s {vcpu * 1024} CPU units", "lower TASKS_PER_MACHINE, or use a larger "
                        "MACHINE_TYPE")
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


