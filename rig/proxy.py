"""A loopback HTTP proxy in front of moto: adds a fixed latency and records what it forwards.

The agent's benchmark uses the latency to simulate the distance to real AWS; the build-ami tests read
the record to prove calls that moto accepts but does not store (ModifyImageAttribute ImdsSupport).
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

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


class LatencyProxy:
    """``ThreadingHTTPServer`` on 127.0.0.1 that forwards every request to ``upstream``."""

    def __init__(self, upstream: str, latency_s: float = 0.0) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        assert self.upstream.hostname in ("127.0.0.1", "localhost", "::1"), "proxy upstream must be loopback"
        self.latency_s = latency_s
        self.header_overrides: dict[str, str] = {}   # e.g. a skewed Date, for the clock check
        self.records: list[Recorded] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy.records.append(Recorded(self.command, self.path,
                                                  self.headers.get("X-Amz-Target", ""), body))
                if proxy.latency_s:
                    time.sleep(proxy.latency_s)
                conn = http.client.HTTPConnection(proxy.upstream.hostname or "127.0.0.1",
                                                  proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                self.send_response_only(resp.status, resp.reason)   # upstream's own Date and Server pass through
                overrides = {k.lower(): (k, v) for k, v in proxy.header_overrides.items()}
                for k, v in resp.getheaders():
                    if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length" and k.lower() not in overrides:
                        self.send_header(k, v)
                for k, v in overrides.values():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="latency-proxy", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LatencyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def actions(self) -> list[str]:
        with self._lock:
            return [r.action for r in self.records]

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
