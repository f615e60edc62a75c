"""The one way this platform talks to the partner retailer.

`get_retailer_client()` returns the backend named by settings.RETAILER_BACKEND:

- "inprocess" (the embedded default): calls the sandbox retailer's public Python API
  (`retailer.api.handle`), which answers with the same JSON-able dicts as its HTTP API.
- "http": speaks the retailer's HTTP API (docs/retailer-api.md): signed JSON POSTs,
  a timeout per attempt, retries with backoff on 5xx and connection errors.

Both implement `RetailerClient`. Callers see plain dicts and the typed errors below,
never the transport. The sandbox's models are never imported here or anywhere outside
`retailer/`: the retailer is another company's system.

Adding an endpoint is one method on `RetailerClient` that calls `self._call(...)`. The
fulfilment methods (`submit_order`, `submit_orders`, `cancel_order`, `request_return`) are all keyed by the
caller's idempotency key, so the client may retry them like reads.
"""

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from typing import Any

import httpx
from django.conf import settings

logger = logging.getLogger(__name__)


class RetailerError(Exception):
    """Any failure to get a usable answer from the retailer."""

    def __init__(self, message: str, *, code: str = "retailer_error", status: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class RetailerUnavailable(RetailerError):
    """The retailer did not answer usefully (5xx, connection refused or reset) after all retries."""


class RetailerTimeout(RetailerUnavailable):
    """The retailer did not answer within settings.RETAILER_TIMEOUT, on every attempt."""


class RetailerRejected(RetailerError):
    """The retailer refused the request (4xx): a bad signature, a bad cursor... Retrying will not help."""


class RetailerClient:
    """The retailer interface. Subclasses provide `_send`; everything else is shared."""

    backend = "abstract"

    def __init__(self, *, retries: int | None = None, backoff: float = 0.2):
        self.retries = settings.RETAILER_RETRIES if retries is None else retries
        self.backoff = backoff

    # --- catalog -----------------------------------------------------------------------
    def catalog_categories(self) -> dict:
        """{"retailer": {"code", "name", ...}, "categories": [{"code", "name"}, ...]}"""
        return self._call("catalog/categories", {})

    def catalog_feed(self, *, cursor: str | None, limit: int = 100) -> dict:
        """One page of products changed after `cursor`: {"items", "next_cursor", "has_more"}."""
        return self._call("catalog/feed", {"cursor": cursor or "", "limit": limit})

    # --- fulfilment (safe to repeat: the retailer is idempotent on `key`) ---------------
    def submit_order(self, *, key: str, lines: list[dict], address: dict, total: str, currency: str) -> dict:
        """Hand over one order. {"order": {"key", "id", "status": "accepted"|"refused"|..., "refusal"?},
        "duplicate"}. The same key always gets the same answer and never ships twice."""
        payload = {"key": key, "lines": lines, "address": address, "total": total, "currency": currency}
        return self._call("orders/submit", payload)

    def submit_orders(self, orders: list[dict]) -> list[dict]:
        """Hand over several orders in one call, each a dict of `submit_order`'s arguments.
        One answer per order, in the same order: `submit_order`'s answer, or
        {"error": {"code", "message"}} for an order the retailer could not read. Each key
        keeps its own idempotency, so repeating the call (or part of it) never ships twice."""
        answer = self._call("orders/submit-batch", {"orders": orders})
        results = answer.get("results")
        if (
            not isinstance(results, list)
            or len(results) != len(orders)
            or not all(isinstance(r, dict) for r in results)
        ):
            raise RetailerError(
                "orders/submit-batch: the answer does not have one result per order", code="bad_answer"
            )
        return results

    def get_order(self, *, key: str) -> dict:
        return self._call("orders/get", {"key": key})

    def cancel_order(self, *, key: str) -> dict:
        """{"cancelled": bool, "status": ...}: False once the parcel has left the warehouse."""
        return self._call("orders/cancel", {"key": key})

    def request_return(self, *, key: str, order_key: str, lines: list[dict], reason: str) -> dict:
        """Register a return of delivered goods; the decision arrives later by callback."""
        return self._call("orders/return", {"key": key, "order_key": order_key, "lines": lines, "reason": reason})

    # --- plumbing ----------------------------------------------------------------------
    def _call(self, endpoint: str, payload: dict, *, retry: bool = True) -> dict:
        """Send with retries on RetailerUnavailable (only for calls that are safe to repeat)."""
        attempts = 1 + (self.retries if retry else 0)
        for attempt in range(1, attempts + 1):
            try:
                answer = self._send(endpoint, payload)
            except RetailerUnavailable as exc:
                if attempt == attempts:
                    raise
                logger.warning("retailer %s: %s (attempt %d of %d), retrying", endpoint, exc, attempt, attempts)
                time.sleep(self.backoff * 2 ** (attempt - 1))
                continue
            if not isinstance(answer, dict):
                raise RetailerError(f"{endpoint}: the retailer's answer is not a JSON object", code="bad_answer")
            return answer
        raise AssertionError("unreachable")

    def _send(self, endpoint: str, payload: dict) -> Any:
        raise NotImplementedError


class InProcessRetailerClient(RetailerClient):
    """Calls the sandbox retailer's Python API in this process (the embedded default)."""

    backend = "inprocess"

    def _send(self, endpoint: str, payload: dict) -> Any:
        from retailer import api  # the sandbox's public API, not its models

        try:
            answer = api.handle(endpoint, json.loads(json.dumps(payload)))
        except api.ApiError as exc:
            error = RetailerUnavailable if exc.status >= 500 else RetailerRejected
            raise error(f"{endpoint}: {exc.message}", code=exc.code, status=exc.status)
        # Round-trip through JSON so callers get exactly what the HTTP backend would give them.
        return json.loads(json.dumps(answer))


# One keep-alive HTTP client per process, shared by every HttpRetailerClient. `httpx.post`
# builds a client (and an SSL context: ~28 ms of CPU) and a TCP connection per call; a
# worker handing off dozens of orders a second spent most of its time there. The client
# is thread-safe; a forked child (Celery's prefork pool) starts with none of its own.
# Connections idle longer than KEEPALIVE_SECONDS are dropped before the server's own
# keep-alive limit (uvicorn: 5 s) can close them under a request.
KEEPALIVE_SECONDS = 4.0
_shared_client: httpx.Client | None = None
_shared_lock = threading.Lock()


def _http_client() -> httpx.Client:
    global _shared_client
    client = _shared_client
    if client is None:
        with _shared_lock:
            if _shared_client is None:
                _shared_client = httpx.Client(limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS))
            client = _shared_client
    return client


def _forget_client_after_fork() -> None:
    global _shared_client, _shared_lock
    _shared_client, _shared_lock = None, threading.Lock()  # the parent's sockets are not ours


os.register_at_fork(after_in_child=_forget_client_after_fork)


class HttpRetailerClient(RetailerClient):
    """Speaks the retailer's HTTP API: signed JSON POSTs to {RETAILER_API_URL}v1/<endpoint>."""

    backend = "http"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        key: str | None = None,
        secret: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        backoff: float = 0.2,
    ):
        super().__init__(retries=retries, backoff=backoff)
        self.base_url = (base_url or settings.RETAILER_API_URL).rstrip("/") + "/"
        self.key = settings.RETAILER_API_KEY if key is None else key
        self.secret = settings.RETAILER_API_SECRET if secret is None else secret
        self.timeout = settings.RETAILER_TIMEOUT if timeout is None else timeout

    def signed_headers(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = hmac.new(self.secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return {
            "Content-Type": "application/json",
            "X-Retailer-Key": self.key,
            "X-Retailer-Timestamp": ts,
            "X-Retailer-Signature": signature,
        }

    def _send(self, endpoint: str, payload: dict) -> Any:
        url = f"{self.base_url}v1/{endpoint}"
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            try:
                response = _http_client().post(
                    url, content=body, headers=self.signed_headers(body), timeout=self.timeout
                )
            except httpx.RemoteProtocolError:
                # The server closed a kept-alive connection as the request went out (or died
                # answering it). Every endpoint is idempotent: send it once more, on a new one.
                response = _http_client().post(
                    url, content=body, headers=self.signed_headers(body), timeout=self.timeout
                )
        except httpx.TimeoutException:
            raise RetailerTimeout(f"{endpoint}: no answer within {self.timeout:g} s", code="timeout")
        except httpx.TransportError as exc:
            raise RetailerUnavailable(
                f"{endpoint}: cannot reach the retailer ({type(exc).__name__})", code="unreachable"
            )
        try:
            data = response.json()
        except ValueError:
            data = None
        error = (data or {}).get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else response.reason_phrase
        code = error.get("code") if isinstance(error, dict) else f"http_{response.status_code}"
        if response.status_code >= 500:
            raise RetailerUnavailable(
                f"{endpoint}: HTTP {response.status_code} {message}", code=code, status=response.status_code
            )
        if response.status_code >= 400:
            raise RetailerRejected(
                f"{endpoint}: HTTP {response.status_code} {message}", code=code, status=response.status_code
            )
        if data is None:
            raise RetailerError(
                f"{endpoint}: the retailer's answer is not JSON", code="bad_answer", status=response.status_code
            )
        return data


def get_retailer_client() -> RetailerClient:
    backend = settings.RETAILER_BACKEND
    if backend == "http":
        return HttpRetailerClient()
    if backend == "inprocess":
        return InProcessRetailerClient()
    raise RetailerError(f"Unknown RETAILER_BACKEND {backend!r}; use 'inprocess' or 'http'", code="misconfigured")
