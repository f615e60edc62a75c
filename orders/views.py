"""Pages and small JSON endpoints. Each calls one selector or service."""

from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

import inbound
from orders import errors, live, selectors, services
from orders.payments import SIGNATURE_HEADER, TEST_CARDS, TIMESTAMP_HEADER
from orders.state import FINAL

MAX_BODY = services.CALLBACK_MAX_BYTES


def _error(err: errors.OrderError, status: int = 400) -> JsonResponse:
    return JsonResponse({"ok": False, **err.as_dict()}, status=status)


def _json_body(request) -> dict:
    try:
        data = inbound.parse_json(request.body or b"{}", max_bytes=MAX_BODY)
    except inbound.Refused as exc:
        raise errors.InvalidRequest(exc.message)
    if not isinstance(data, dict):
        raise errors.InvalidRequest("Send a JSON object.")
    return data


@login_required
def order_list(request):
    page = Paginator(selectors.order_list(user=request.user), 20).get_page(request.GET.get("page"))
    return render(request, "orders/order_list.html", {"orders": page.object_list, "page": page})


@login_required
def order_detail(request, number: str):
    order = selectors.order_get(user=request.user, number=number)
    template = "orders/_order_panel.html" if request.GET.get("embed") == "1" else "orders/order_detail.html"
    return render(request, template, {
        "order": order, "events": list(order.events.all()), "lines": list(order.lines.all()),
        "payment": getattr(order, "payment", None), "final": order.status in FINAL,
        "can_cancel": order.status == "pending_payment",  # paid and later: fulfilment's after-sales panel
    })  # fmt: skip


@login_required
@require_GET
def order_status(request, number: str):
    order = selectors.order_get(user=request.user, number=number)
    events = [
        {"to": e.to_status, "label": e.get_to_status_display(), "reason": e.reason, "at": e.at.isoformat()}
        for e in order.events.all()
    ]
    payment = getattr(order, "payment", None)
    return JsonResponse({
        "order": live.order_summary(order), "events": events, "final": order.status in FINAL,
        "payment_status": payment.status if payment else None,
    })  # fmt: skip


@login_required
@require_POST
def order_cancel(request, number: str):
    try:
        services.order_cancel(user=request.user, order_number=number)
    except errors.NotFound:
        return HttpResponse(status=404)
    except errors.OrderError as err:
        from django.contrib import messages

        messages.error(request, err.message)
    return redirect("orders:detail", number=number)


@csrf_exempt
@require_POST
def payment_callback(request):
    """The gateway's signed callback (HMAC over "<timestamp>.<body>")."""
    if len(request.body) > MAX_BODY:
        return JsonResponse({"error": "too large"}, status=413)
    result = services.payment_callback_handle(
        body=request.body,
        signature=request.headers.get(SIGNATURE_HEADER),
        timestamp=request.headers.get(TIMESTAMP_HEADER),
    )
    return JsonResponse(result.body, status=result.status)


@require_GET
def quote(request):
    if not request.user.is_authenticated:
        return JsonResponse({"ok": False, "code": "login_required", "message": "Log in to buy."}, status=401)
    try:
        q = selectors.order_quote(
            user=request.user, shelf_item_id=request.GET.get("item"), quantity=request.GET.get("quantity") or 1,
            flash_sale_id=request.GET.get("sale") or None,
        )  # fmt: skip
        services.product_open_record(user=request.user, shelf_item_id=q.item)
    except errors.OrderError as err:
        return _error(err, 404 if isinstance(err, errors.NotFound) else 409)
    return JsonResponse({
        "ok": True, **q.as_dict(), "addresses": selectors.addresses_for_sheet(user=request.user),
        "test_cards": [{"number": n, "result": r} for n, r in TEST_CARDS],
    })  # fmt: skip


@require_POST
def buy(request):
    """The same purchase as the room's `buy` message, over HTTP (for clients without a socket)."""
    if not request.user.is_authenticated:
        return JsonResponse({"ok": False, "code": "login_required", "message": "Log in to buy."}, status=401)
    try:
        data = _json_body(request)
        result = services.order_place(
            user=request.user, shelf_item_id=data.get("item"), quantity=data.get("quantity"),
            address_id=data.get("address"), payment_method=data.get("card"),
            idempotency_key=data.get("key"), flash_sale_id=data.get("sale"),
            expected_unit_price=data.get("expected_unit_price"),
        )  # fmt: skip
    except errors.OrderError as err:
        return _error(err, 404 if isinstance(err, errors.NotFound) else 409)
    return JsonResponse(result.as_dict(), status=200)


@require_GET
def room_offers(request, room_id: int):
    """Public: units left per shelf item and the room's flash sales (the cards' truth)."""
    services.room_stock_open(room_id=room_id)
    return JsonResponse(selectors.room_offers(room_id=room_id))


@login_required
@require_GET
def room_sales(request, room_id: int):
    selectors.room_for_host(user=request.user, room_id=room_id)
    return JsonResponse(selectors.room_sales(room_id=room_id))


@login_required
@require_POST
def flash_sale_create(request, room_id: int):
    selectors.room_for_host(user=request.user, room_id=room_id)
    try:
        data = _json_body(request)
        starts_at = data.get("starts_at")
        if starts_at is not None:
            try:  # a well-formed but impossible time (Feb 30, 25:00) raises ValueError
                starts_at = parse_datetime(starts_at) if isinstance(starts_at, str) else None
            except ValueError:
                starts_at = None
            if not isinstance(starts_at, datetime):
                raise errors.FlashSaleInvalid("The start time is not a date and time.")
        sale = services.flash_sale_start(
            user=request.user, shelf_item_id=data.get("item"), sale_price=data.get("sale_price"),
            quantity=data.get("quantity"), per_user_limit=data.get("per_user_limit"),
            duration_seconds=data.get("duration_seconds"), starts_at=starts_at, room_id=room_id,
        )  # fmt: skip
    except errors.OrderError as err:
        return _error(err, 403 if isinstance(err, errors.NotAllowed) else 409)
    return JsonResponse({"ok": True, "sale": live.flash_sale_payload(sale)}, status=201)
