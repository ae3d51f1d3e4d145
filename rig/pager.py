"""A loopback stand-in in front of moto that pages list calls as AWS does (or one item per page, as AWS may).

moto answers most lists in one page however long they are (``DescribeAlarms`` with 5,000 alarms: one 2.4 MB
page), and honours the paging parameters of only some of them; AWS pages them. This proxy forwards each paged
call to moto without its paging parameters (following moto's own markers where moto pages, so it holds the
whole list), then cuts the list itself and hands out a marker that is simply the index of the next item:
``IsTruncated``/``Marker`` for IAM, ``nextToken`` for EC2, ``NextToken`` for SNS and for JSON services
(CloudWatch's ``NextToken``, Logs' and ECS's ``nextToken``). Everything else passes through untouched.

Two page sizes (``mode``):

- ``"one"``: one item per page, for every paged call: IAM's List* say "IAM might return fewer than the
  MaxItems number of results even when there are more results available", and EC2 hands out a NextToken
  whenever it likes, so a reader that stops at the first page is caught.
- ``"aws"``: AWS's documented page sizes (``PAGES``: the request's own limit, at most AWS's maximum, else AWS's
  default; ``None`` where AWS answers everything in one page when the request names no limit), so a test or a
  benchmark counts the requests a real account would cost.

It also stands in for one filter moto lacks: EC2 ``DescribeInstances`` with ``Filter instance-lifecycle``
(moto 5.2.5 answers HTTP 500, ``NotImplementedError``; AWS supports it, EC2 API reference
DescribeInstances, "instance-lifecycle - Indicates whether this is a Spot Instance, a Scheduled Instance,
or a Capacity Block (spot | scheduled | capacity-block)"). The proxy asks moto without that filter and
drops the instances whose ``instanceLifecycle`` does not match (an instance without one is on-demand).

It serves tests and benchmarks only (moto does not check signatures, so the rewritten body is fine), and
``requests`` records every request the client sent it (not the ones it sent moto to gather a list), in order.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

from rig.proxy import LoopbackServer, ask_upstream, read_body, reply


@dataclass(frozen=True)
class Paging:
    """How AWS pages one list operation."""

    items: str                  # the answer's list: an XML element name, or a JSON key
    token: str                  # the request's marker parameter (also the answer's, but for IAM's and EC2's)
    limit: str | None           # the request's page-size parameter (None: the API has none)
    style: Literal["iam", "ec2", "sns", "json"]
    default: int | None         # AWS's page size when the request names no limit (None: all in one page)
    maximum: int | None         # the largest page a request may ask for
    source: str                 # where the numbers are documented


_IAM_SRC = ("IAM API reference, MaxItems: 'If you do not include this parameter, the number of items defaults to "
            "100'; botocore iam service-2.json maxItemsType min 1 max 1000")
_EC2_ALL = ("EC2 API reference, MaxResults: without it, all items are returned (DescribeSecurityGroups says so in "
            "botocore's ec2 service-2.json: 'If this parameter is not specified, then all items are returned')")


def _iam(items: str) -> Paging:
    return Paging(items, "Marker", "MaxItems", "iam", 100, 1000, _IAM_SRC)


def _ec2_all(items: str, maximum: int | None = 1000) -> Paging:
    return Paging(items, "NextToken", "MaxResults", "ec2", None, maximum, _EC2_ALL)


# action -> how AWS pages it: every list operation the agent uses.
PAGES: dict[str, Paging] = {
    **{a: _iam("AttachedPolicies") for a in (
        "ListAttachedRolePolicies", "ListAttachedUserPolicies", "ListAttachedGroupPolicies")},
    **{a: _iam("PolicyNames") for a in ("ListRolePolicies", "ListUserPolicies", "ListGroupPolicies")},
    "ListGroupsForUser": _iam("Groups"),
    "SimulatePrincipalPolicy": _iam("EvaluationResults"),
    "DescribeImages": _ec2_all("imagesSet", None),
    "DescribeSubnets": _ec2_all("subnetSet"),
    "DescribeSecurityGroups": _ec2_all("securityGroupInfo"),
    "DescribeInstances": _ec2_all("reservationSet", None),
    "DescribeRouteTables": _ec2_all("routeTableSet", 100),
    "DescribeVpcs": _ec2_all("vpcSet", 1000),
    "DescribeNatGateways": _ec2_all("natGatewaySet", 1000),
    "DescribeSpotFleetRequests": Paging(
        "spotFleetRequestConfigSet", "NextToken", "MaxResults", "ec2", 1000, 1000,
        "EC2 API reference DescribeSpotFleetRequests, MaxResults: 'Specify a value between 1 and 1000. The default "
        "value is 1000'"),
    "DescribeSpotFleetInstances": Paging(
        "activeInstanceSet", "NextToken", "MaxResults", "ec2", 1000, 1000,
        "EC2 API reference DescribeSpotFleetInstances, MaxResults: 1-1000, default 1000 (botocore ec2 "
        "DescribeSpotFleetInstancesMaxResults min 1 max 1000)"),
    "DescribeSpotPriceHistory": Paging(
        "spotPriceHistorySet", "NextToken", "MaxResults", "ec2", 1000, 1000,
        "EC2 API reference DescribeSpotPriceHistory, MaxResults: 'Valid range: 0 - 1000', default 1000"),
    "DescribeInstanceTypes": Paging(
        "instanceTypeSet", "NextToken", "MaxResults", "ec2", 100, 100,
        "botocore ec2 DITMaxResults min 5 max 100; EC2 answers at most 100 instance types a page"),
    "DescribeInstanceTypeOfferings": Paging(
        "instanceTypeOfferingSet", "NextToken", "MaxResults", "ec2", 1000, 1000,
        "botocore ec2 DITOMaxResults min 5 max 1000"),
    "ListSubscriptionsByTopic": Paging(
        "Subscriptions", "NextToken", None, "sns", 100, 100,
        "SNS API reference ListSubscriptionsByTopic: 'Returns a list of the subscriptions to a specific topic. "
        "Each call returns a limited list of subscriptions, up to 100'"),
    "ListTopics": Paging(
        "Topics", "NextToken", None, "sns", 100, 100,
        "SNS API reference ListTopics: 'Each call returns a limited list of topics, up to 100'"),
    "DescribeAlarms": Paging(
        "MetricAlarms", "NextToken", "MaxRecords", "json", 50, 100,
        "CloudWatch API reference DescribeAlarms, MaxRecords: 'The maximum number of alarm descriptions to "
        "retrieve' (1-100, botocore cloudwatch MaxRecords); AWS returns 50 when it is not given"),
    "ListDashboards": Paging(
        "DashboardEntries", "NextToken", None, "json", 1000, 1000,
        "CloudWatch API reference ListDashboards: 'ListDashboards returns up to 1000 results on one page'"),
    "DescribeLogGroups": Paging(
        "logGroups", "nextToken", "limit", "json", 50, 50,
        "CloudWatch Logs API reference DescribeLogGroups, limit: 'If you don't specify a value, the default is up "
        "to 50 items' (botocore logs DescribeLimit max 50)"),
    "DescribeExportTasks": Paging(
        "exportTasks", "nextToken", "limit", "json", 50, 50,
        "CloudWatch Logs API reference DescribeExportTasks, limit: 'the default is up to 50 items'"),
    "ListContainerInstances": Paging(
        "containerInstanceArns", "nextToken", "maxResults", "json", 100, 100,
        "ECS API reference ListContainerInstances, maxResults: 'This value can be between 1 and 100. If this "
        "parameter isn't used, then ListContainerInstances returns up to 100 results'"),
}

# The actions the one-item mode pages (the ones whose later pages tests/agent/test_pagination.py relies on),
# kept as before for those tests: action -> (list element, paging parameters, style).
PAGED: dict[str, tuple[str, tuple[str, ...], str]] = {
    a: (p.items, (p.token, *([p.limit] if p.limit else [])), p.style) for a, p in PAGES.items()
    if p.style in ("iam", "ec2") and a in (
        "ListAttachedRolePolicies", "ListAttachedUserPolicies", "ListAttachedGroupPolicies", "ListRolePolicies",
        "ListUserPolicies", "ListGroupPolicies", "ListGroupsForUser", "DescribeImages")}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(parent: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in parent if _local(c.tag) == name), None)


class _Xml:
    """One XML answer of a query-protocol list: its members, the element that holds them, its marker."""

    def __init__(self, xml: bytes, paging: Paging) -> None:
        self.paging = paging
        self.root = ET.fromstring(xml)  # noqa: S314 - moto's own answer, from loopback
        self.ns = self.root.tag[1:].split("}", 1)[0] if self.root.tag.startswith("{") else ""
        if self.ns:
            ET.register_namespace("", self.ns)
        self.holder = next((p for p in self.root.iter() if _child(p, paging.items) is not None), None)
        self.items = _child(self.holder, paging.items) if self.holder is not None else None

    def q(self, name: str) -> str:
        return f"{{{self.ns}}}{name}" if self.ns else name

    def members(self) -> list[ET.Element]:
        return list(self.items) if self.items is not None else []

    def _marker_home(self) -> ET.Element | None:
        return self.root if self.paging.style == "ec2" else self.holder

    def _marker_name(self) -> str:
        return {"iam": "Marker", "ec2": "nextToken", "sns": "NextToken"}[self.paging.style]

    def marker(self) -> str | None:
        """moto's own marker for the rest of the list, if it paged."""
        home = self._marker_home()
        if home is None:
            return None
        if self.paging.style == "iam":
            trunc = _child(home, "IsTruncated")
            if trunc is None or (trunc.text or "").strip() != "true":
                return None
        found = _child(home, self._marker_name())
        return (found.text or "").strip() or None if found is not None else None

    def render(self, members: list[ET.Element], next_index: int | None) -> bytes:
        assert self.items is not None and self.holder is not None
        for m in list(self.items):
            self.items.remove(m)
        self.items.extend(members)
        home = self._marker_home()
        assert home is not None
        for name in ("IsTruncated", "Marker") if self.paging.style == "iam" else (self._marker_name(),):
            old = _child(home, name)
            if old is not None:
                home.remove(old)
        if self.paging.style == "iam":
            ET.SubElement(home, self.q("IsTruncated")).text = "true" if next_index is not None else "false"
        if next_index is not None:
            ET.SubElement(home, self.q(self._marker_name())).text = str(next_index)
        return ET.tostring(self.root, encoding="utf-8", xml_declaration=True)


def one_page(xml: bytes, action: str, index: int) -> bytes:
    """moto's whole answer cut down to item ``index``, with the marker of the next one when there is one."""
    doc = _Xml(xml, PAGES[action])
    if doc.items is None:
        return xml
    members = doc.members()
    return doc.render(members[index:index + 1], index + 1 if index + 1 < len(members) else None)


def _page_size(paging: Paging, asked: str, mode: str) -> int | None:
    if mode == "one":
        return 1
    size = int(asked) if asked.strip().isdigit() and int(asked) > 0 else paging.default
    if size is not None and paging.maximum is not None:
        size = min(size, paging.maximum)
    return size


_FILTER = re.compile(r"^Filter\.(\d+)\.(Name|Value\.\d+)$")


def _without_lifecycle_filter(form: dict[str, list[str]]) -> tuple[dict[str, list[str]], set[str] | None]:
    """The DescribeInstances form without its instance-lifecycle filter (renumbered), and that filter's values."""
    filters: dict[int, dict[str, list[str]]] = {}
    rest: dict[str, list[str]] = {}
    for k, v in form.items():
        m = _FILTER.match(k)
        if m:
            filters.setdefault(int(m.group(1)), {})[m.group(2)] = v
        else:
            rest[k] = v
    wanted: set[str] | None = None
    n = 0
    for i in sorted(filters):
        f = filters[i]
        if (f.get("Name") or [""])[0] == "instance-lifecycle":
            wanted = {v[0] for k, v in f.items() if k.startswith("Value.")}
            continue
        n += 1
        for k, v in f.items():
            rest[f"Filter.{n}.{k}"] = v
    return rest, wanted


def _only_lifecycle(xml: bytes, wanted: set[str]) -> bytes:
    """Keep the instances whose instanceLifecycle is among ``wanted`` (none: on-demand), and their reservations."""
    root = ET.fromstring(xml)  # noqa: S314 - moto's own answer, from loopback
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if ns:
        ET.register_namespace("", ns)
    reservations = _child(root, "reservationSet")
    if reservations is None:
        return xml
    for res in list(reservations):
        instances = _child(res, "instancesSet")
        for inst in list(instances) if instances is not None else []:
            life = _child(inst, "instanceLifecycle")
            value = (life.text or "").strip() if life is not None else ""
            if value not in wanted:
                assert instances is not None
                instances.remove(inst)
        if instances is None or not list(instances):
            reservations.remove(res)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


_READS = ("Describe", "List", "Get", "Head", "Lookup", "Filter", "Simulate", "Search")


def _is_read(method: str, action: str) -> bool:
    """Whether a request only reads (S3's REST reads by method, every other service by its action's verb)."""
    if not action:
        return method in ("GET", "HEAD")
    return action.startswith(_READS)


class PagingProxy(LoopbackServer):
    """``ThreadingHTTPServer`` on 127.0.0.1 forwarding to ``upstream`` (loopback only). ``paged`` lists the
    (action, index of the page's first item) of every page it cut, in order; ``requests`` every request the
    client sent, as (action, page index) — S3's as ("<METHOD> <path>", 0)."""

    def __init__(self, upstream: str, mode: Literal["one", "aws"] = "one", *, keep_lists: bool = False) -> None:
        """``keep_lists``: gather each list from moto once and cut every later page of it from memory, until
        :meth:`forget` (or any request that is not a read). For benchmarks: moto's own time for a list grows
        with the account (DescribeInstances over 1,500 instances, DescribeSpotFleetRequests over 500 fleets,
        gathered anew for every page), which AWS's does not, so without it a busy account's wall measures moto.
        Whoever writes to moto behind the proxy's back (rig.clutter seeds moto directly) calls forget()."""
        self.upstream = urllib.parse.urlsplit(upstream)
        assert self.upstream.hostname in ("127.0.0.1", "localhost", "::1"), "pager upstream must be loopback"
        self.mode = mode
        self.keep_lists = keep_lists
        self._kept: dict[tuple[str, str], tuple[Any, Any, threading.Lock]] = {}
        self.paged: list[tuple[str, int]] = []
        self.requests: list[tuple[str, int]] = []
        self.bytes_out = 0            # bytes of the answers sent to the client
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _forward(self) -> None:
                body = read_body(self)
                target = self.headers.get("X-Amz-Target", "")
                if target:
                    action = target.rsplit(".", 1)[-1]
                    json_body = True
                else:
                    form = urllib.parse.parse_qs(body.decode(errors="replace"), keep_blank_values=True)
                    action = (form.get("Action") or [""])[0]
                    json_body = False
                if not _is_read(self.command, action):
                    proxy.forget()
                paging = PAGES.get(action)
                if paging is not None and proxy.mode == "one" and action not in PAGED:
                    paging = None
                if paging is not None and self.command != "POST":
                    paging = None
                if json_body and paging is not None and paging.style != "json":
                    paging = None
                answer, index = (proxy._paged(self, action, paging, body) if paging is not None
                                 else (proxy._plain(self, action, body), 0))
                with proxy._lock:
                    proxy.requests.append((action or f"{self.command} {urllib.parse.urlsplit(self.path).path}",
                                           index))
                    proxy.bytes_out += len(answer[3])
                reply(self, answer)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        super().__init__(Handler, "pager")

    def _plain(self, handler: BaseHTTPRequestHandler, action: str, body: bytes) -> Any:
        wanted: set[str] | None = None
        if action == "DescribeInstances" and handler.command == "POST":
            form = urllib.parse.parse_qs(body.decode(errors="replace"), keep_blank_values=True)
            form, wanted = _without_lifecycle_filter(form)
            if wanted is not None:
                body = urllib.parse.urlencode(form, doseq=True).encode()
        status, reason, headers, data = ask_upstream(self.upstream, handler, body)
        if wanted is not None and status == 200:
            data = _only_lifecycle(data, wanted)
        return status, reason, headers, data

    def _paged(self, handler: BaseHTTPRequestHandler, action: str, paging: Paging,
               body: bytes) -> tuple[Any, int]:
        """Gather moto's whole list (following moto's own markers), then answer one page of it."""
        if paging.style == "json":
            req = json.loads(body or b"{}")
            index = int(req.pop(paging.token, None) or 0)
            size = _page_size(paging, str(req.pop(paging.limit, "") if paging.limit else ""), self.mode)
            key = (action, json.dumps(req, sort_keys=True))
            kept = self._kept.get(key)
            if kept is not None:
                (status, reason, headers, doc), items, _ = kept
                doc = dict(doc)
            else:
                items = []
                while True:
                    status, reason, headers, data = ask_upstream(self.upstream, handler, json.dumps(req).encode())
                    if status != 200:
                        return (status, reason, headers, data), index
                    doc = json.loads(data or b"{}")
                    items += doc.get(paging.items) or []
                    more = doc.pop(paging.token, None)
                    if not more:
                        break
                    req[paging.token] = more
                if self.keep_lists:
                    self._kept[key] = ((status, reason, headers, dict(doc)), items, threading.Lock())
            end = len(items) if size is None else index + size
            doc[paging.items] = items[index:end]
            if end < len(items):
                doc[paging.token] = str(end)
            self._note(action, index)
            return (status, reason, headers, json.dumps(doc).encode()), index
        form = urllib.parse.parse_qs(body.decode(errors="replace"), keep_blank_values=True)
        index = int(form.pop(paging.token, [""])[0] or "0")
        size = _page_size(paging, form.pop(paging.limit, [""])[0] if paging.limit else "", self.mode)
        wanted: set[str] | None = None
        if action == "DescribeInstances":
            form, wanted = _without_lifecycle_filter(form)
        key = (action, urllib.parse.urlencode(sorted(form.items()), doseq=True) + f"|{sorted(wanted or ())}")
        kept = self._kept.get(key)
        if kept is not None:
            (status, reason, headers, first), members, lock = kept
            end = len(members) if size is None else index + size
            with lock:   # render() rearranges the kept tree
                out = first.render(members[index:end], end if end < len(members) else None)
            self._note(action, index)
            return (status, reason, headers, out), index
        members = []
        first = None
        while True:
            status, reason, headers, data = ask_upstream(self.upstream, handler,
                                                         urllib.parse.urlencode(form, doseq=True).encode())
            if status != 200:
                return (status, reason, headers, data), index
            if wanted is not None:
                data = _only_lifecycle(data, wanted)
            doc = _Xml(data, paging)
            if doc.items is None:
                return (status, reason, headers, data), index
            first = first or doc
            members += doc.members()
            more = doc.marker()
            if not more:
                break
            form[paging.token] = [more]
        assert first is not None
        end = len(members) if size is None else index + size
        if self.keep_lists:
            self._kept[key] = ((status, reason, headers, first), members, threading.Lock())
        out = first.render(members[index:end], end if end < len(members) else None)
        self._note(action, index)
        return (status, reason, headers, out), index

    def forget(self) -> None:
        """Drop the kept lists (see ``keep_lists``)."""
        with self._lock:
            self._kept.clear()

    def _note(self, action: str, index: int) -> None:
        with self._lock:
            self.paged.append((action, index))
