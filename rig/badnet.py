"""Loopback stand-ins for an AWS endpoint that does not answer usefully, for the degraded-network tests.

- ``refusing()``: a URL on 127.0.0.1 where nothing listens (connection refused at once);
- ``rig.ports.SilentListener``: accepts and never answers (the timeout path);
- :class:`FailingEndpoint`: answers every request with one failure, in the request's own protocol so
  botocore parses it as AWS's: ``html500`` (a load balancer's HTML page, HTTP 500), ``slowdown`` (503
  SlowDown, S3's throttling), ``throttling`` (400 Throttling / ThrottlingException). It counts requests,
  so a test can see botocore's bounded retries.
- :class:`ThrottlingProxy`: in front of moto, throttles the first attempt of every request (in its protocol)
  and forwards the retry: a busy account, where botocore's standard retries must get every answer through.

Throttling is answered as each service does: S3 503 SlowDown (REST-XML, no body on HEAD), Lambda 429
TooManyRequestsException (REST-JSON), the JSON protocols 400 ThrottlingException, EC2 503
RequestLimitExceeded... as its query dialect, the other query services 400 Throttling.

Each is a real HTTP server on 127.0.0.1; nothing here leaves the machine.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

from rig.ports import SilentListener, free_port
from rig.proxy import LoopbackServer, QuietHandler, ask_upstream, read_body, reply, send

__all__ = ["KINDS", "MODES", "FailingEndpoint", "SilentListener", "refusing", "stand_in"]

MODES = ("html500", "slowdown", "throttling")
KINDS = ("refusing", "silent", *MODES)   # every way an endpoint can fail to answer, for the degraded tests


def refusing() -> str:
    """An endpoint URL on which nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@contextlib.contextmanager
def stand_in(kind: str) -> Iterator[str]:
    """The URL of a loopback endpoint that fails as ``kind`` (one of KINDS), for as long as the block runs."""
    if kind == "refusing":
        yield refusing()
    elif kind == "silent":
        with SilentListener() as silent:
            yield silent.url
    else:
        with FailingEndpoint(kind) as failing:
            yield failing.url


def _answer(mode: str, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
    if mode == "html500":
        return 500, {"Content-Type": "text/html"}, b"<html><body><h1>500 Internal Server Error</h1></body></html>"
    status, code = (503, "SlowDown") if mode == "slowdown" else (400, "Throttling")
    message = "Please reduce your request rate." if mode == "slowdown" else "Rate exceeded"
    target = handler.headers.get("X-Amz-Target", "")
    if handler.path.startswith("/2015-03-31/"):                         # Lambda (REST-JSON)
        code = "TooManyRequestsException" if mode == "throttling" else code
        return (429 if mode == "throttling" else status), \
            {"Content-Type": "application/json", "x-amzn-ErrorType": code}, \
            json.dumps({"Type": "User", "message": message}).encode()
    if target or "json" in handler.headers.get("Content-Type", ""):   # JSON protocols (SQS, ECS, Logs, …)
        json_code = code if code == "SlowDown" else "ThrottlingException"
        return status, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": json_code}, \
            json.dumps({"__type": json_code, "message": message}).encode()
    text = body.decode(errors="replace")
    if "Version=2016-11-15" in text:                                    # EC2's query dialect
        code = "RequestLimitExceeded" if code == "Throttling" else code
        xml = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
               "<RequestID>badnet</RequestID></Response>")
    elif "Action=" in text:                                             # the other query services (STS, IAM)
        xml = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
               "</Error><RequestId>badnet</RequestId></ErrorResponse>")
    else:                                                               # REST-XML (S3): it throttles with 503
        status, code = 503, "SlowDown"
        xml = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>badnet</RequestId></Error>"
    return status, {"Content-Type": "text/xml"}, xml.encode()


class FailingEndpoint(LoopbackServer):
    """Answers every request with the failure ``mode`` (see the module's docstring)."""

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        self.requests = 0
        self._lock = threading.Lock()
        endpoint = self

        class Handler(QuietHandler):
            def answer(self) -> None:
                body = read_body(self)
                with endpoint._lock:
                    endpoint.requests += 1
                send(self, *_answer(endpoint.mode, self, body))

        super().__init__(Handler, f"failing-{mode}")

    @property
    def url(self) -> str:
        return self.endpoint


class ThrottlingProxy(LoopbackServer):
    """Forwards to ``upstream`` (moto), but answers the first attempt of each request (the same method, path,
    target and body) with ``mode``'s throttling; its retry goes through."""

    def __init__(self, upstream: str, *, mode: str = "throttling") -> None:
        import urllib.parse

        self.upstream = urllib.parse.urlsplit(upstream)
        assert self.upstream.hostname in ("127.0.0.1", "localhost", "::1"), "upstream must be loopback"
        self.mode = mode
        self.requests = self.throttled = 0
        self._seen: set[tuple[str, str, str, bytes]] = set()
        self._lock = threading.Lock()
        proxy = self

        class Handler(QuietHandler):
            def answer(self) -> None:
                body = read_body(self)
                key = (self.command, self.path, self.headers.get("X-Amz-Target", ""), body)
                with proxy._lock:
                    proxy.requests += 1
                    throttle = key not in proxy._seen
                    proxy._seen.add(key)
                    proxy.throttled += throttle
                if throttle:
                    send(self, *_answer(proxy.mode, self, body))
                else:
                    reply(self, ask_upstream(proxy.upstream, self, body))

        super().__init__(Handler, "throttling-proxy")
