"""Reads for fulfilment: an order's hand-off and after-sales, hosts' earnings, staff reports."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from fulfilment.models import AfterSalesRequest, CommissionEntry, Handoff
from orders.models import Order
from streams.models import Room

ZERO = Decimal("0.00")
CANCELLABLE = ("paid", "sent_to_retailer", "accepted", "packed")


def after_sales_for_order(*, order: Order) -> dict:
    handoff = Handoff.objects.filter(order=order).first()
    requests = list(AfterSalesRequest.objects.filter(order=order).order_by("created_at", "id"))
    open_request = next((r for r in requests if r.status in ("requested", "approved")), None)
    now = timezone.now()
    window_open = bool(
        order.status == "delivered" and handoff and handoff.return_window_ends and handoff.return_window_ends > now
    )
    returned = {line["line"] for r in requests if r.kind == "return" and r.status == "refunded" for line in r.lines}
    return {
        "order": order,
        "handoff": handoff,
        "requests": requests,
        "open_request": open_request,
        "can_cancel": order.status in CANCELLABLE and open_request is None,
        "can_return": window_open and open_request is None,
        "returnable_lines": [ln for ln in order.lines.all() if ln.pk not in returned],
    }


def earnings_rooms(*, host_id: int) -> list[dict]:
    """Per room: pending, settled, reversed and net commission (net = pending + settled)."""
    rows = (
        CommissionEntry.objects.filter(host_id=host_id)
        .values("room_id", "room__title", "room__scheduled_start")
        .annotate(
            lines=Count("id"),
            pending=Sum("amount", filter=Q(status="pending")),
            settled=Sum("amount", filter=Q(status="settled")),
            reversed=Sum("amount", filter=Q(status="reversed")),
            sales=Sum("base", filter=~Q(status="reversed")),
        )
        .order_by("-room__scheduled_start")
    )
    out = []
    for row in rows:
        pending, settled, rev = row["pending"] or ZERO, row["settled"] or ZERO, row["reversed"] or ZERO
        out.append(
            {
                "room_id": row["room_id"],
                "title": row["room__title"],
                "date": row["room__scheduled_start"],
                "lines": row["lines"],
                "sales": row["sales"] or ZERO,
                "pending": pending,
                "settled": settled,
                "reversed": rev,
                "net": pending + settled,
            }
        )
    return out


def earnings_totals(rooms: list[dict]) -> dict:
    keys = ("sales", "pending", "settled", "reversed", "net")
    return {k: sum((r[k] for r in rooms), ZERO) for k in keys}


def earnings_entries(*, host_id: int, room_id: int) -> QuerySet[CommissionEntry]:
    return (
        CommissionEntry.objects.filter(host_id=host_id, room_id=room_id)
        .select_related("order", "line")
        .order_by("created_at", "id")
    )


def room_money(*, room_ids: list[int]) -> dict[int, dict]:
    """Staff report per room: GMV (every order ever paid), refunds, commission by status."""
    paid_ever = Order.objects.filter(room_id__in=room_ids, paid_at__isnull=False)
    gmv = dict(paid_ever.values("room_id").annotate(v=Sum("total")).values_list("room_id", "v"))
    orders = dict(paid_ever.values("room_id").annotate(v=Count("id")).values_list("room_id", "v"))
    refunds = dict(
        paid_ever.filter(status__in=["refunded", "cancelled"])
        .values("room_id")
        .annotate(v=Sum("total"))
        .values_list("room_id", "v")
    )
    partial = dict(
        AfterSalesRequest.objects.filter(order__room_id__in=room_ids, kind="return", status="refunded")
        .exclude(order__status="refunded")
        .values("order__room_id")
        .annotate(v=Sum("amount"))
        .values_list("order__room_id", "v")
    )
    commission = {}
    for row in (
        CommissionEntry.objects.filter(room_id__in=room_ids)
        .values("room_id")
        .annotate(
            pending=Sum("amount", filter=Q(status="pending")),
            settled=Sum("amount", filter=Q(status="settled")),
            reversed=Sum("amount", filter=Q(status="reversed")),
        )
    ):
        commission[row["room_id"]] = row
    out = {}
    for room_id in room_ids:
        c = commission.get(room_id, {})
        refunded = (refunds.get(room_id) or ZERO) + (partial.get(room_id) or ZERO)
        pending, settled = c.get("pending") or ZERO, c.get("settled") or ZERO
        out[room_id] = {
            "orders": orders.get(room_id, 0),
            "gmv": gmv.get(room_id) or ZERO,
            "refunds": refunded,
            "net_sales": (gmv.get(room_id) or ZERO) - refunded,
            "commission_pending": pending,
            "commission_settled": settled,
            "commission_reversed": c.get("reversed") or ZERO,
            "commission_net": pending + settled,
        }
    return out


def host_rooms(*, host_id: int) -> QuerySet[Room]:
    return Room.objects.filter(host_id=host_id)
