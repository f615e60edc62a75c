"""The retailer's callback endpoint, the buyer's after-sales actions, the host's earnings."""

import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

import inbound
from fulfilment import callbacks, selectors, services
from orders import errors


@csrf_exempt
@require_POST
def retailer_callback(request):
    """POST /fulfilment/retailer/callback: the retailer's signed status callbacks."""
    length = inbound.content_length(request.headers.get("Content-Length"))
    if length is None:
        return JsonResponse({"error": "bad_length", "message": "Content-Length must be ASCII digits"}, status=400)
    if length > callbacks.MAX_BODY:
        return JsonResponse({"error": "too_large"}, status=413)
    status, answer = callbacks.receive(body=request.body, headers=request.headers)
    return JsonResponse(answer, status=status)


@login_required
@require_POST
def order_cancel(request, number: str):
    try:
        order = services.cancel_request(
            user=request.user, order_number=number, reason=request.POST.get("reason", "")[:200]
        )
    except errors.NotFound:
        raise Http404("No such order")
    except errors.OrderError as err:
        messages.error(request, err.message)
    else:
        if order.status == "cancelled":
            messages.success(request, "Your order is cancelled and the payment is being refunded.")
        else:
            messages.info(request, "We've asked the retailer to cancel it. You'll see their answer here.")
    return redirect("orders:detail", number=number)


@login_required
@require_POST
def order_return(request, number: str):
    try:
        services.return_request(
            user=request.user,
            order_number=number,
            reason=request.POST.get("reason", ""),
            line_ids=request.POST.getlist("line") or None,
        )
    except errors.NotFound:
        raise Http404("No such order")
    except errors.OrderError as err:
        messages.error(request, err.message)
    else:
        messages.success(request, "Return requested. The retailer usually answers within a day.")
    return redirect("orders:detail", number=number)


def _host(request):
    profile = getattr(request.user, "host_profile", None)
    if profile is None or not request.user.is_host:
        raise Http404("Earnings are for hosts")
    return profile


@login_required
@require_GET
def earnings(request):
    host = _host(request)
    rooms = selectors.earnings_rooms(host_id=host.pk)
    return render(
        request, "fulfilment/earnings.html", {"rooms": rooms, "totals": selectors.earnings_totals(rooms), "host": host}
    )


def _csv_cell(value):
    """Text a spreadsheet would run as a formula is written as plain text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@login_required
@require_GET
def earnings_csv(request, room_id: int):
    host = _host(request)
    entries = selectors.earnings_entries(host_id=host.pk, room_id=room_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="earnings-room-{room_id}.csv"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "order",
            "product",
            "quantity",
            "sale",
            "rate",
            "commission",
            "currency",
            "status",
            "settles_after",
            "recorded_at",
        ]
    )
    for e in entries:
        row = [
            e.order.number,
            e.line.title,
            e.line.quantity,
            e.base,
            e.rate,
            e.amount,
            e.currency,
            e.status,
            e.settle_after.isoformat() if e.settle_after else "",
            e.created_at.isoformat(),
        ]
        writer.writerow([_csv_cell(value) for value in row])
    return response
