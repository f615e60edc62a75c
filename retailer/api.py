"""The sandbox retailer's public API, as Python: the same JSON-able dicts its HTTP API sends.

`handle(endpoint, payload)` is the one entry point. The HTTP views call it after checking
the request's signature; the platform's in-process backend calls it directly. Both get
the same answers and the same injected faults, so switching backends changes nothing a
caller can see except the transport.
"""

import random
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db.models import F

from retailer import fulfilment
from retailer.models import SandboxCategory, SandboxFault, SandboxProduct

API_VERSION = "v1"
FEED_DEFAULT_LIMIT = 100
FEED_MAX_LIMIT = 500
RETAILER_NAME = "Jindou Mall"


class ApiError(Exception):
    """An answer other than success: HTTP status, a stable machine code, a human message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def as_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def retailer_info() -> dict:
    return {"code": settings.RETAILER_CODE, "name": RETAILER_NAME, "currency": "CNY", "api_version": API_VERSION}


def catalog_categories(payload: dict) -> dict:
    categories = [{"code": c.code, "name": c.name} for c in SandboxCategory.objects.order_by("code")]
    return {"retailer": retailer_info(), "categories": categories}


def product_entry(product: SandboxProduct) -> dict:
    """One feed entry. Retired products stay in the feed as entries with status "retired"."""
    return {
        "sku": product.sku,
        "status": product.status,
        "title": product.title,
        "brand": product.brand,
        "description": product.description,
        "category": product.category.code,
        "price": f"{product.price:.2f}",
        "currency": product.currency,
        "seller": {"type": product.seller_type, "name": product.seller_name},
        "stock": product.stock,
        "images": list(product.image_urls),
        "seq": product.seq,
        "updated_at": product.updated_at.isoformat(),
    }


def _parse_cursor(value: Any) -> int:
    if value in (None, ""):
        return 0
    if not isinstance(value, str) or not value.isdigit() or len(value) > 19:
        raise ApiError(400, "bad_cursor", "cursor must be a value returned as next_cursor by this feed")
    return int(value)


def _parse_limit(value: Any) -> int:
    if value is None:
        return FEED_DEFAULT_LIMIT
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= FEED_MAX_LIMIT:
        raise ApiError(400, "bad_limit", f"limit must be an integer from 1 to {FEED_MAX_LIMIT}")
    return value


def catalog_feed(payload: dict) -> dict:
    """Products changed after `cursor`, oldest change first, at most `limit` of them."""
    after = _parse_cursor(payload.get("cursor"))
    limit = _parse_limit(payload.get("limit"))
    rows = list(SandboxProduct.objects.select_related("category").filter(seq__gt=after).order_by("seq")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [product_entry(p) for p in rows],
        "next_cursor": str(rows[-1].seq if rows else after),
        "has_more": has_more,
    }


ENDPOINTS: dict[str, Callable[[dict], dict]] = {
    "catalog/categories": catalog_categories,
    "catalog/feed": catalog_feed,
    "orders/submit": fulfilment.submit_order,
    "orders/submit-batch": fulfilment.submit_batch,
    "orders/get": fulfilment.get_order,
    "orders/cancel": fulfilment.cancel_order,
    "orders/return": fulfilment.request_return,
}
# Faults met by the call itself; callback faults act in retailer.fulfilment.
CALL_FAULTS = [SandboxFault.Kind.ERROR, SandboxFault.Kind.SLOW, SandboxFault.Kind.TIMEOUT]
# A fault switched on for an endpoint also hits the other forms of the same operation.
FAULT_ENDPOINTS = {"orders/submit-batch": ["orders/submit"]}


def _apply_faults(endpoint: str) -> SandboxFault | None:
    """Consume one injected fault for this endpoint, if any: sleep, or answer an error.

    A "timeout" fault is returned to `handle`, which does the work first and then loses
    the answer (the partner cannot tell whether the call took effect).
    """
    endpoints = ["", endpoint, *FAULT_ENDPOINTS.get(endpoint, [])]
    faults = SandboxFault.objects.filter(remaining__gt=0, endpoint__in=endpoints, kind__in=CALL_FAULTS)
    for fault in faults.order_by("id")[:5]:
        if fault.probability < 1 and random.random() >= fault.probability:
            continue  # an error *rate*: this call is lucky
        taken = SandboxFault.objects.filter(pk=fault.pk, remaining__gt=0).update(remaining=F("remaining") - 1)
        if not taken:
            continue  # another caller took the last one
        if fault.kind == SandboxFault.Kind.SLOW:
            time.sleep(fault.delay_seconds)
            return None
        if fault.kind == SandboxFault.Kind.TIMEOUT:
            return fault
        raise ApiError(fault.status_code, "injected_fault", "The retailer is temporarily unavailable (sandbox fault).")
    return None


def handle(endpoint: str, payload: Any) -> dict:
    if endpoint not in ENDPOINTS:
        raise ApiError(404, "unknown_endpoint", f"No endpoint {API_VERSION}/{endpoint}")
    if not isinstance(payload, dict):
        raise ApiError(400, "bad_request", "The request body must be a JSON object")
    lost = _apply_faults(endpoint)
    answer = ENDPOINTS[endpoint](payload)
    if lost is not None:
        time.sleep(lost.delay_seconds)
        raise ApiError(504, "timeout", "The retailer took too long to answer (sandbox fault).")
    return answer
