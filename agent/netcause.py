"""What it means when AWS did not answer usefully, in one line that names the endpoint once.

Not an answer about the account: no connection, no reply in time, a server error after botocore's retries,
or throttling that outlasted them. A verdict built on one of these is "could not check", never a pass, a
warning on a ready account or "your credentials do not work".
"""

from __future__ import annotations

import urllib.parse

# botocore's own names for requests that never got an answer (botocore.exceptions).
_NO_CONNECTION = {"EndpointConnectionError", "ConnectionClosedError", "ProxyConnectionError", "SSLError",
                  "HTTPClientError", "InvalidProxiesConfigError"}
_TIMEOUT = {"ConnectTimeoutError", "ReadTimeoutError", "ConnectionError"}
# Throttling codes botocore's standard retry mode backs off on (botocore.retries.standard), plus S3's SlowDown.
THROTTLED = frozenset({"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
                       "TooManyRequestsException", "ProvisionedThroughputExceededException",
                       "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
                       "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
                       "EC2ThrottledException"})


def endpoint_of(exc: BaseException) -> str:
    """scheme://host[:port] of the endpoint a botocore error names, or ""."""
    url = str((getattr(exc, "kwargs", None) or {}).get("endpoint_url", "") or "")
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url


def cause_of(exc: BaseException, *, read_timeout: float | None = None) -> str | None:
    """One line for a failure that says nothing about the account; None for anything else."""
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    chain.sort(key=lambda x: type(x).__name__ == "AwsError")   # botocore's own error (it names the endpoint) first
    for e in chain:
        name = type(e).__name__
        module = type(e).__module__ or ""
        if not module.startswith(("botocore", "urllib3")) and name not in ("AwsError",):
            continue
        where = endpoint_of(e) or "the AWS endpoint"
        if name in _TIMEOUT and module.startswith("botocore"):
            secs = f" in {read_timeout:g} s" if read_timeout else ""
            return f"no answer from {where}{secs} (timed out)"
        if name in _NO_CONNECTION and module.startswith("botocore"):
            text = str(e)
            if "refused" in text.lower() or name == "EndpointConnectionError":
                return f"could not connect to {where} (connection refused or no route)"
            return f"the connection to {where} failed ({name})"
        response = getattr(e, "response", None)
        if isinstance(response, dict) and "Error" in response:
            err = response.get("Error") or {}
            code = str(err.get("Code", "") or "")
            status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
            op = str(getattr(e, "operation_name", "") or "")
            if code in THROTTLED:
                return f"AWS kept throttling the requests ({code} on {op or 'a read'}, after botocore's retries)"
            if isinstance(status, int) and status >= 500:
                return f"AWS answered HTTP {status}{' (' + code + ')' if code and code != str(status) else ''} " \
                       f"to {op or 'a read'}, after botocore's retries"
        if name == "AwsError":
            code = str(getattr(e, "code", ""))
            if code in _TIMEOUT:
                return "no answer from the AWS endpoint (timed out)"
            if code in _NO_CONNECTION:
                return f"could not connect to the AWS endpoint ({code})"
            status = getattr(e, "status", None)
            op = str(getattr(e, "operation", "") or "")
            if code in THROTTLED:
                return f"AWS kept throttling the requests ({code} on {op or 'a read'}, after botocore's retries)"
            if isinstance(status, int) and status >= 500:
                return f"AWS answered HTTP {status} to {op or 'a read'}, after botocore's retries"
    return None
