"""A loopback stand-in in front of moto that answers list calls one item per page, as AWS may.

IAM's List* calls say "IAM might return fewer than the MaxItems number of results even when there are more
results available: check IsTruncated after every call", and EC2's Describe* calls hand out a NextToken
whenever they like. moto answers every list in one page (and honours Marker only for some of IAM's), so code
that reads only the first page passes against it. This proxy forwards each paged call to moto without its
paging parameters, then returns one item of moto's full answer per page: ``IsTruncated`` and ``Marker`` for
IAM, ``nextToken`` for EC2, where the marker is simply the index of the next item. Everything else passes
through untouched. It serves tests only (moto does not check signatures, so the rewritten body is fine).
"""

from __future__ import annotations

import threading
import urllib.parse
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler

from rig.proxy import LoopbackServer, ask_upstream, read_body, reply

# action -> (the list element of its answer, the request's paging parameters, the answer's paging style)
PAGED: dict[str, tuple[str, tuple[str, ...], str]] = {
    **{a: ("AttachedPolicies", ("Marker", "MaxItems"), "iam") for a in (
        "ListAttachedRolePolicies", "ListAttachedUserPolicies", "ListAttachedGroupPolicies")},
    **{a: ("PolicyNames", ("Marker", "MaxItems"), "iam") for a in (
        "ListRolePolicies", "ListUserPolicies", "ListGroupPolicies")},
    "ListGroupsForUser": ("Groups", ("Marker", "MaxItems"), "iam"),
    "DescribeImages": ("imagesSet", ("NextToken", "MaxResults"), "ec2"),
}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(parent: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in parent if _local(c.tag) == name), None)


def one_page(xml: bytes, action: str, index: int) -> bytes:
    """moto's whole answer cut down to item ``index``, with the marker of the next one when there is one."""
    list_name, _, style = PAGED[action]
    root = ET.fromstring(xml)  # noqa: S314 - moto's own answer, from loopback
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if ns:
        ET.register_namespace("", ns)
    holder = next((p for p in root.iter() if _child(p, list_name) is not None), None)
    if holder is None:
        return xml
    items = _child(holder, list_name)
    assert items is not None
    members = list(items)
    for m in members:
        items.remove(m)
    items.extend(members[index:index + 1])
    more = index + 1 < len(members)
    q = (lambda n: f"{{{ns}}}{n}") if ns else (lambda n: n)
    if style == "iam":
        for name in ("IsTruncated", "Marker"):
            old = _child(holder, name)
            if old is not None:
                holder.remove(old)
        ET.SubElement(holder, q("IsTruncated")).text = "true" if more else "false"
        if more:
            ET.SubElement(holder, q("Marker")).text = str(index + 1)
    else:
        old = _child(root, "nextToken")
        if old is not None:
            root.remove(old)
        if more:
            ET.SubElement(root, q("nextToken")).text = str(index + 1)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


class PagingProxy(LoopbackServer):
    """``ThreadingHTTPServer`` on 127.0.0.1 forwarding to ``upstream`` (loopback only); ``paged`` lists the
    actions it cut into pages, in order (a test can see the agent asked for every page)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        assert self.upstream.hostname in ("127.0.0.1", "localhost", "::1"), "pager upstream must be loopback"
        self.paged: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _forward(self) -> None:
                body = read_body(self)
                form = urllib.parse.parse_qs(body.decode(errors="replace"), keep_blank_values=True)
                action = (form.get("Action") or [""])[0]
                index = 0
                if action in PAGED and self.command == "POST":
                    for name in PAGED[action][1]:
                        value = form.pop(name, [""])[0]
                        if name in ("Marker", "NextToken") and value:
                            index = int(value)
                    body = urllib.parse.urlencode(form, doseq=True).encode()
                status, reason, headers, data = ask_upstream(proxy.upstream, self, body)
                if action in PAGED and self.command == "POST" and status == 200:
                    data = one_page(data, action, index)
                    with proxy._lock:
                        proxy.paged.append((action, index))
                reply(self, (status, reason, headers, data))

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        super().__init__(Handler, "pager")
