"""The sandbox retailer's HTTP API: POST /retailer-api/v1/<endpoint>, signed JSON in and out.

`respond()` is the whole request handling, transport aside. Two transports call it: this
Django view (the test client, `runserver`), and `retailer.asgi`, which config/asgi.py
puts in front of Django so a real server answers the partner without Django's middleware.
"""

import logging
from collections.abc import Callable, Mapping

from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

import inbound
from retailer import api
from retailer.signing import SignatureError, verify

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024


def _error(status: int, code: str, message: str) -> tuple[int, dict, dict[str, str]]:
    return status, {"error": {"code": code, "message": message}}, {}


def respond(
    *, method: str, name: str, headers: Mapping[str, str], read_body: Callable[[], bytes]
) -> tuple[int, dict, dict[str, str]]:
    """(status, JSON body, extra headers) for one request. `headers` is case-insensitive;
    the body is read only once the method and the declared length are acceptable. In
    production the sandbox does not answer unless ALLOW_SANDBOX_RETAILER is set."""
    if not settings.SANDBOX_RETAILER_API:
        return _error(404, "not_found", "No such endpoint")
    if method != "POST":
        status, body, _ = _error(405, "method_not_allowed", "Use POST with a signed JSON body")
        return status, body, {"Allow": "POST"}
    length = inbound.content_length(headers.get("Content-Length"))
    if length is None:
        return _error(400, "bad_length", "Content-Length must be ASCII digits")
    if length > MAX_BODY_BYTES:
        return _error(413, "body_too_large", f"Request bodies are limited to {MAX_BODY_BYTES} bytes")
    body = read_body()
    if len(body) > MAX_BODY_BYTES:
        return _error(413, "body_too_large", f"Request bodies are limited to {MAX_BODY_BYTES} bytes")
    try:
        verify(
            key=headers.get("X-Retailer-Key", ""),
            timestamp=headers.get("X-Retailer-Timestamp", ""),
            signature=headers.get("X-Retailer-Signature", ""),
            body=body,
        )
    except SignatureError as exc:
        return _error(401, exc.code, exc.message)
    try:
        payload = inbound.parse_json(body or b"{}", max_bytes=MAX_BODY_BYTES)
    except inbound.Refused as exc:
        return _error(400, exc.code, exc.message)
    try:
        return 200, api.handle(name, payload), {}
    except api.ApiError as exc:
        return exc.status, exc.as_dict(), {}
    except Exception:
        logger.exception("sandbox retailer: %s failed", name)
        return _error(500, "internal_error", "The retailer could not answer")


@csrf_exempt
def endpoint(request, name: str):
    status, body, extra = respond(
        method=request.method, name=name, headers=request.headers, read_body=lambda: request.body
    )
    response = JsonResponse(body, status=status)
    for header, value in extra.items():
        response[header] = value
    return response
