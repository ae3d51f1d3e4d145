"""A loopback STAND-IN for EC2 ``DescribeSpotFleetRequestHistory``, in front of moto (which answers it with HTTP
500, ``NotImplementedError``); every other request is forwarded to ``upstream`` untouched.

It answers as the EC2 API reference documents the operation: ``spotFleetRequestId``, ``startTime``,
``lastEvaluatedTime``, ``historyRecordSet`` of items with ``timestamp``, ``eventType`` (instanceChange |
fleetRequestChange | error | information) and ``eventInformation`` (``eventSubType``, ``eventDescription``,
``instanceId``), and ``nextToken`` when there is more (``MaxResults`` 1–1000); the request's ``EventType`` and
``StartTime`` filter the records. An unknown fleet id answers ``InvalidSpotFleetRequestId.NotFound`` (HTTP 400),
as EC2 does. The records are what a test put in ``events`` (fleet id -> records): moto keeps no history, so a
fleet nobody recorded anything for has none. It is a stand-in for the tests and benchmarks only, never proof of
what EC2 records.
"""

from __future__ import annotations

import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from rig.proxy import LoopbackServer, QuietHandler, ask_upstream, read_body, reply, send

NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


@dataclass
class Record:
    event_type: str                 # instanceChange | fleetRequestChange | error | information
    sub_type: str
    description: str = ""
    instance_id: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


class FleetHistoryStandIn(LoopbackServer):
    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream)
        assert self.upstream.hostname in ("127.0.0.1", "localhost", "::1"), "stand-in upstream must be loopback"
        self.events: dict[str, list[Record]] = {}
        self.known: set[str] = set()        # fleet ids answered even without records (else: asked of moto)
        self.asked: list[dict[str, str]] = []
        self._lock = threading.Lock()
        standin = self

        class Handler(QuietHandler):
            def answer(self) -> None:
                body = read_body(self)
                form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(errors="replace")).items()}
                if self.command == "POST" and form.get("Action") == "DescribeSpotFleetRequestHistory":
                    status, data = standin.history(form, self)
                    send(self, status, {"Content-Type": "text/xml;charset=UTF-8"}, data)
                    return
                reply(self, ask_upstream(standin.upstream, self, body))

        super().__init__(Handler, "fleet-history-standin")

    def record(self, fleet_id: str, *records: Record) -> None:
        with self._lock:
            self.events.setdefault(fleet_id, []).extend(records)

    def _exists(self, fleet_id: str, handler: QuietHandler) -> bool:
        """Whether moto knows the fleet (asked with the caller's own headers: same account and region)."""
        if fleet_id in self.events or fleet_id in self.known:
            return True
        probe = urllib.parse.urlencode({"Action": "DescribeSpotFleetRequests", "Version": "2016-11-15",
                                        "SpotFleetRequestId.1": fleet_id}).encode()
        status, _, _, data = ask_upstream(self.upstream, handler, probe)
        return status == 200 and fleet_id.encode() in data

    def history(self, form: dict[str, str], handler: QuietHandler) -> tuple[int, bytes]:
        with self._lock:
            self.asked.append(dict(form))
        fid = form.get("SpotFleetRequestId", "")
        if not self._exists(fid, handler):
            return 400, (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>'
                         f"InvalidSpotFleetRequestId.NotFound</Code><Message>The spot fleet request ID '{escape(fid)}' "
                         f"does not exist</Message></Error></Errors><RequestID>standin</RequestID></Response>").encode()
        start = _parse_time(form.get("StartTime", "")) or datetime.fromtimestamp(0, UTC)
        kind = form.get("EventType", "")
        with self._lock:
            records = [r for r in self.events.get(fid, []) if r.at >= start and (not kind or r.event_type == kind)]
        size = max(1, min(int(form.get("MaxResults") or 1000), 1000))
        first = int(form.get("NextToken") or 0)
        page = records[first:first + size]
        items = "".join(
            f"<item><timestamp>{_iso(r.at)}</timestamp><eventType>{r.event_type}</eventType><eventInformation>"
            f"<eventSubType>{escape(r.sub_type)}</eventSubType><eventDescription>{escape(r.description)}"
            f"</eventDescription>{f'<instanceId>{r.instance_id}</instanceId>' if r.instance_id else ''}"
            f"</eventInformation></item>" for r in page)
        more = f"<nextToken>{first + size}</nextToken>" if first + size < len(records) else ""
        xml = (f'<?xml version="1.0" encoding="UTF-8"?><DescribeSpotFleetRequestHistoryResponse xmlns="{NS}">'
               f"<requestId>standin-{len(self.asked)}</requestId><spotFleetRequestId>{escape(fid)}</spotFleetRequestId>"
               f"<startTime>{_iso(start)}</startTime><lastEvaluatedTime>{_iso(datetime.now(UTC))}</lastEvaluatedTime>"
               f"<historyRecordSet>{items}</historyRecordSet>{more}</DescribeSpotFleetRequestHistoryResponse>")
        return 200, xml.encode()
