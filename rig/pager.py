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

import http.client
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

# action -> (the list element of its answer, the request's paging parameters, the answer's paging style)
PAGED: dict[str, tuple[str, tuple[str, ...], str]] = {
    **{a: ("AttachedPolicies", ("Marker", "MaxItems"), "iam") for a in (
        "ListAttachedRolePolicies", "ListAttachedUserPolicies", "ListAttachedGroupPolicies")},
    **{a: ("PolicyNames", ("Marker", "MaxItems"), "iam") for a in (
        "ListRolePolicies", "ListUserPolicies", "ListGroupPolicies")},
    "ListGroupsForUser": ("Groups", ("Marker", "MaxItems"), "iam"),
    "DescribeImages": ("imagesSet", ("NextToken", "MaxResults"), "ec2"),
}
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te",
               "content-length"}


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


class PagingProxy:
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
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                form = urllib.parse.parse_qs(body.decode(errors="replace"), keep_blank_values=True)
                action = (form.get("Action") or [""])[0]
                index = 0
                if action in PAGED and self.command == "POST":
                    for name in PAGED[action][1]:
                        value = form.pop(name, [""])[0]
                        if name in ("Marker", "NextToken") and value:
                            index = int(value)
                    body = urllib.parse.urlencode(form, doseq=True).encode()
                conn = http.client.HTTPConnection(proxy.upstream.hostname or "127.0.0.1", proxy.upstream.port,
                                                  timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if action in PAGED and self.command == "POST" and resp.status == 200:
                    data = one_page(data, action, index)
                    with proxy._lock:
                        proxy.paged.append((action, index))
                self.send_response_only(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP_BY_HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="pager", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PagingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> PagingProxy:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
