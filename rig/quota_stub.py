"""A loopback stand-in for the Service Quotas API, which moto does not implement for ``ec2``.

STUB, and the only one: moto answers GetServiceQuota for ``ec2`` with NoSuchResourceException
(see test-rig.md §1), so this tiny HTTP server speaks that one JSON-protocol action instead. It is
reached through botocore's own per-service endpoint setting (AWS_ENDPOINT_URL_SERVICE_QUOTAS), so the
agent's code path is the real one, in-process and in subprocesses alike.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any

from rig.proxy import LoopbackServer

# The spot vCPU quotas of a healthy account: standard, G and VT, P, Inf, Trn, DL, F, X.
DEFAULT_QUOTAS = {"L-34B43A08": 256.0, "L-3819A6DF": 64.0, "L-7212CCBC": 64.0, "L-B5D1601B": 64.0,
                  "L-6B0D517C": 64.0, "L-85EED4F7": 96.0, "L-88CF9481": 64.0, "L-E3A00192": 64.0}


class QuotaStub(LoopbackServer):
    def __init__(self, quotas: dict[str, float] | None = None) -> None:
        self.quotas: dict[str, float] = dict(DEFAULT_QUOTAS if quotas is None else quotas)
        self.calls = 0
        self.requests: list[dict[str, Any]] = []   # RequestServiceQuotaIncrease calls, as AWS lists them
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body: dict[str, Any] = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                target = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
                stub.calls += 1
                code = body.get("QuotaCode", "")
                payload: dict[str, Any]
                if target == "RequestServiceQuotaIncrease" and code in stub.quotas:
                    # Shapes as botocore's service-quotas model gives them (RequestedServiceQuotaChange).
                    change = {"Id": f"req-{len(stub.requests) + 1}", "ServiceCode": body.get("ServiceCode"),
                              "QuotaCode": code, "DesiredValue": body.get("DesiredValue"), "Status": "PENDING"}
                    stub.requests.append(change)
                    status, payload = 200, {"RequestedQuota": change}
                elif target == "ListRequestedServiceQuotaChangeHistoryByQuota":
                    status, payload = 200, {"RequestedQuotas": [r for r in stub.requests if r["QuotaCode"] == code]}
                elif target in ("GetServiceQuota", "GetAWSDefaultServiceQuota") and code in stub.quotas:
                    status, payload = 200, {"Quota": {
                        "ServiceCode": body.get("ServiceCode"), "QuotaCode": code,
                        "QuotaName": "Spot Instance Requests", "Value": stub.quotas[code], "Unit": "None"}}
                else:
                    status, payload = 400, {"__type": "NoSuchResourceException",
                                            "message": f"no quota {code!r} in this stand-in"}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler, "quota-stub")
