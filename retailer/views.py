"""The sandbox retailer's HTTP API: POST /retailer-api/v1/<endpoint>, signed JSON in and out."""

import json
import logging

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from retailer import api
from retailer.signing import SignatureError, verify

logger = logging.getLogger(__name__)
MAX_BODY_BYTES = 64 * 1024


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


@csrf_exempt
def endpoint(request, name: str):
    if request.method != "POST":
        response = _error(405, "method_not_allowed", "Use POST with a signed JSON body")
        response["Allow"] = "POST"
        return response
    length = request.headers.get("Content-Length") or "0"
    if not length.isdigit() or int(length) > MAX_BODY_BYTES:
        return _error(413, "body_too_large", f"Request bodies are limited to {MAX_BODY_BYTES} bytes")
    body = request.body
    try:
        verify(
            key=request.headers.get("X-Retailer-Key", ""),
            timestamp=request.headers.get("X-Retailer-Timestamp", ""),
            signature=request.headers.get("X-Retailer-Signature", ""),
            body=body,
        )
    except SignatureError as exc:
        return _error(401, exc.code, exc.message)
    try:
        payload = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _error(400, "bad_json", "The request body is not valid JSON")
    try:
        return JsonResponse(api.handle(name, payload))
    except api.ApiError as exc:
        return JsonResponse(exc.as_dict(), status=exc.status)
    except Exception:
        logger.exception("sandbox retailer: %s failed", name)
        return _error(500, "internal_error", "The retailer could not answer")
