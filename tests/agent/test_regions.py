"""Regions and partitions: a region the account has not enabled, and regions outside the aws partition.

moto accepts every region for every account, so the not-enabled region is shown through a loopback stand-in
for STS and EC2 that answers as AWS documents: a request signed for an opt-in region the account has not
enabled gets ``InvalidClientTokenId`` (403) from STS ("The security token included in the request is
invalid") and ``AuthFailure`` from EC2, while EC2 in an enabled region answers ``DescribeRegions`` with
``AllRegions=true`` listing every region and its ``optInStatus`` (opt-in-not-required, opted-in, not-opted-in).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from agent.model import Status
from rig.proxy import LoopbackServer, read_body
from rig.seed import DcpAccount
from tests.agent.harness import run_agent

IAM_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


class OptInStandIn(LoopbackServer):
    """STS and EC2 of an account that has enabled ``enabled`` among the opt-in regions ``opt_in`` (all other
    regions need no opt-in). It records the (service, region) of each request."""

    def __init__(self, opt_in: set[str], enabled: set[str], *, keys_valid: bool = True) -> None:
        self.seen: list[tuple[str, str, str]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                return

            def _send(self, status: int, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                form = urllib.parse.parse_qs(read_body(self).decode())
                action = (form.get("Action") or [""])[0]
                m = SCOPE.search(self.headers.get("Authorization", ""))
                region, service = (m.group(1), m.group(2)) if m else ("", "")
                stand_in.seen.append((service, region, action))
                refused = not keys_valid or (region in opt_in and region not in enabled)
                if service == "sts":
                    if refused:
                        return self._send(403, f'<ErrorResponse xmlns="{IAM_NS}"><Error><Type>Sender</Type>'
                                          "<Code>InvalidClientTokenId</Code><Message>The security token included in "
                                          "the request is invalid.</Message></Error><RequestId>1</RequestId>"
                                          "</ErrorResponse>")
                    return self._send(200, f'<GetCallerIdentityResponse xmlns="{IAM_NS}"><GetCallerIdentityResult>'
                                      "<Arn>arn:aws:iam::123456789012:user/dcp-operator</Arn><UserId>AIDA1</UserId>"
                                      "<Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata>"
                                      "<RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>")
                if refused:
                    return self._send(401, "<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not "
                                      "able to validate the provided access credentials</Message></Error></Errors>"
                                      "<RequestID>1</RequestID></Response>")
                if action == "DescribeRegions":
                    items = "".join(
                        f"<item><regionName>{r}</regionName><regionEndpoint>ec2.{r}.amazonaws.com</regionEndpoint>"
                        f"<optInStatus>{'opt-in-not-required' if r not in opt_in else 'opted-in' if r in enabled else 'not-opted-in'}"
                        "</optInStatus></item>" for r in ("us-east-1", "us-west-2", "eu-west-1", *sorted(opt_in)))
                    return self._send(200, f'<DescribeRegionsResponse xmlns="{EC2_NS}"><requestId>1</requestId>'
                                      f"<regionInfo>{items}</regionInfo></DescribeRegionsResponse>")
                return self._send(400, "<Response><Errors><Error><Code>InvalidAction</Code><Message>stand-in"
                                  "</Message></Error></Errors><RequestID>1</RequestID></Response>")

        super().__init__(Handler, "opt-in")


@pytest.fixture
def opt_in(account: DcpAccount, monkeypatch: pytest.MonkeyPatch) -> Iterator[OptInStandIn]:
    with OptInStandIn({"ap-east-1", "me-south-1"}, {"me-south-1"}) as stand_in:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", stand_in.endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", stand_in.endpoint)
        yield stand_in


def test_region_not_enabled_is_named(account: DcpAccount, opt_in: OptInStandIn) -> None:
    account.edit_config(AWS_REGION="ap-east-1")
    account.aws_config.write_text("[default]\nregion = ap-east-1\noutput = json\n")
    r = run_agent(account, ["I01"])["I01"]
    assert r.status == Status.FAIL
    assert "region ap-east-1 is not enabled for this account" in r.message, r.message
    assert "rotate" not in r.fix and "ap-east-1" in r.fix
    assert ("ec2", "us-east-1", "DescribeRegions") in opt_in.seen   # asked where the account surely works


def test_enabled_opt_in_region_passes(account: DcpAccount, opt_in: OptInStandIn) -> None:
    account.edit_config(AWS_REGION="me-south-1")
    account.aws_config.write_text("[default]\nregion = me-south-1\noutput = json\n")
    assert run_agent(account, ["I01"])["I01"].status == Status.PASS


def test_unknown_keys_still_say_rotate(account: DcpAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    with OptInStandIn({"ap-east-1"}, set(), keys_valid=False) as stand_in:
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", stand_in.endpoint)
        monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", stand_in.endpoint)
        r = run_agent(account, ["I01"])["I01"]
    assert r.status == Status.FAIL
    assert "InvalidClientTokenId" in r.message and "rotate" in r.fix
