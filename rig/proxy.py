"""A loopback HTTP proxy in front of moto: adds a fixed latency and records what it forwards.

The agent's benchmark uses the latency to simulate the distance to real AWS; the build-ami tests read
the record to prove calls that moto accepts but does not store (ModifyImageAttribute ImdsSupport).
"""

from __future__ import annotations

import http.client
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    target: str          # X-Amz-Target header (JSON protocols), else ""
    body: bytes
    at: float = field(default_factory=time.monotonic, compare=False)   # when it arrived (time.monotonic)

    @property
    def action(self) -> str:
        """The AWS action name: from the query/form ``Action=`` or the JSON target."""
        if self.target:
            return self.target.rsplit(".", 1)[-1]
        for blob in (self.body.decode(errors="replace"), urllib.parse.urlsplit(self.path).query):
            params = urllib.parse.parse_qs(blob)
            if "Action" in params:
                return params["Action"][0]
        return ""

    def params(self) -> dict[str, str]:
        return {k: v[0] for k, v in urllib.parse.parse_qs(self.body.decode(errors="replace")).items()}


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


Answer = tuple[int, str, list[tuple[str, str]], bytes]   # status, reason, headers, body


def ask_upstream(upstream: urllib.parse.SplitResult, handler: BaseHTTPRequestHandler, body: bytes) -> Answer:
    """Send the handler's request (with ``body``, which a proxy may have rewritten) on to ``upstream``."""
    conn = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port, timeout=60)
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP | {"content-length"}}
    headers["Content-Length"] = str(len(body))
    conn.request(handler.command, handler.path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp.reason, resp.getheaders(), data


def reply(handler: BaseHTTPRequestHandler, answer: Answer, *, overrides: dict[str, str] | None = None) -> None:
    """Answer with upstream's status and headers (its own Date and Server pass through), ``overrides`` replacing
    any of the same name, and its body."""
    status, reason, headers, data = answer
    replaced = {k.lower(): (k, v) for k, v in (overrides or {}).items()}
    handler.send_response_only(status, reason)
    for k, v in headers:
        if k.lower() not in _HOP_BY_HOP | {"content-length"} and k.lower() not in replaced:
            handler.send_header(k, v)
    for k, v in replaced.values():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)


def send(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes) -> None:
    """Answer with ``status``, ``headers`` and ``data`` (no body on HEAD, as HTTP says)."""
    handler.send_response(status)
    for k, v in headers.items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, no access log; every method goes to :meth:`answer`."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def answer(self) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self.answer()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (the agent interrupted or timed out, as the edge tests make it) is no error of
        the stand-in's: say nothing. Anything else is printed as socketserver does."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class LoopbackServer:
    """A threading HTTP server on 127.0.0.1 in a daemon thread, as a context manager."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name=name, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class LatencyProxy(LoopbackServer):
    """``ThreadingHTTPServer`` on 127.0.0.1 that forwards every request to ``upstream``."""

    def __init__(self, upstream: str, latency_s: float = 0.0) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        assert self.upstream.hostname in ("127.0.0.1", "localhost", "::1"), "proxy upstream must be loopback"
        self.latency_s = latency_s
        self.header_overrides: dict[str, str] = {}   # e.g. a skewed Date, for the clock check
        self.records: list[Recorded] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(QuietHandler):
            def answer(self) -> None:
                body = read_body(self)
                with proxy._lock:
                    proxy.records.append(Recorded(self.command, self.path,
                                                  self.headers.get("X-Amz-Target", ""), body))
                if proxy.latency_s:
                    time.sleep(proxy.latency_s)
                reply(self, ask_upstream(proxy.upstream, self, body), overrides=proxy.header_overrides)

        super().__init__(Handler, "latency-proxy")

    def actions(self) -> list[str]:
        with self._lock:
            return [r.action for r in self.records]
