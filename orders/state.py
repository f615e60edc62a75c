"""The order state machine: the only place an order's status changes.

    pending_payment ─┬─▶ paid ─▶ sent_to_retailer ─▶ accepted ─▶ packed ─▶ shipped ─▶ delivered
                     ├─▶ payment_failed              (paid / sent / accepted ─▶ cancelled, refunded)
                     ├─▶ expired
                     └─▶ cancelled                   delivered ─▶ refunded

`transition()` must be called inside a transaction with the order row locked
(`select_for_update`); it refuses illegal moves with `IllegalTransition` and writes one
`OrderEvent` per move.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from orders.errors import IllegalTransition
from orders.models import Order, OrderEvent

S = Order.Status

TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING_PAYMENT: frozenset({S.PAID, S.PAYMENT_FAILED, S.EXPIRED, S.CANCELLED}),
    S.PAID: frozenset({S.SENT_TO_RETAILER, S.CANCELLED, S.REFUNDED}),
    S.SENT_TO_RETAILER: frozenset({S.ACCEPTED, S.CANCELLED, S.REFUNDED}),
    S.ACCEPTED: frozenset({S.PACKED, S.CANCELLED, S.REFUNDED}),
    S.PACKED: frozenset({S.SHIPPED, S.CANCELLED, S.REFUNDED}),  # cancelled: the retailer stopped it before shipping
    S.SHIPPED: frozenset({S.DELIVERED, S.REFUNDED}),
    S.DELIVERED: frozenset({S.REFUNDED}),
    S.PAYMENT_FAILED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}

# A reservation that ends in one of these gives its stock back.
RELEASING = frozenset({S.PAYMENT_FAILED, S.EXPIRED, S.CANCELLED})
FINAL = frozenset(status for status, targets in TRANSITIONS.items() if not targets)


def can_move(from_status: str, to_status: str) -> bool:
    return to_status in TRANSITIONS.get(from_status, frozenset())


def record_created(*, order: Order, actor=None, reason: str = "Order placed, stock reserved") -> OrderEvent:
    """The first timeline entry: the order came to be in its initial status."""
    return OrderEvent.objects.create(
        order=order, from_status="", to_status=order.status, actor=actor,
        actor_kind=OrderEvent.Actor.BUYER, reason=reason, at=order.created_at or timezone.now(),
    )  # fmt: skip


def _refuse_illegal(orders, to: str) -> None:
    """The checks every move makes: inside a transaction (the rows locked), and legal."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("an order moves only in a transaction with its row locked")
    for order in orders:
        if not can_move(order.status, to):
            raise IllegalTransition(
                f"An order that is {Order.Status(order.status).label.lower()} can't become "
                f"{Order.Status(to).label.lower()}.",
                status=order.status,
            )


def transition(*, order: Order, to: str, actor_kind: str, actor=None, reason: str = "") -> OrderEvent:
    _refuse_illegal([order], to)
    now = timezone.now()
    from_status = order.status
    order.status = to
    fields = ["status", "updated_at"]
    if to == S.PAID:
        order.paid_at = now
        fields.append("paid_at")
    if to in FINAL:
        order.closed_at = now
        fields.append("closed_at")
    order.save(update_fields=fields)
    return OrderEvent.objects.create(
        order=order, from_status=from_status, to_status=to, actor=actor, actor_kind=actor_kind,
        reason=reason[:200], at=now,
    )  # fmt: skip


def transition_many(*, moves: list[tuple[Order, str]], to: str, actor_kind: str) -> list[OrderEvent]:
    """`transition` for many locked orders at once, each (order, reason): one UPDATE and one
    INSERT instead of two statements per order. Only for moves that stamp nothing but the
    status (not to paid, not to a final status). All or nothing: one illegal move refuses them all."""
    if not moves:
        return []
    if to == S.PAID or to in FINAL:
        raise ValueError(f"transition_many() does not stamp the times a move to {to} needs; use transition()")
    _refuse_illegal([order for order, _reason in moves], to)
    now = timezone.now()
    events = [
        OrderEvent(
            order=order, from_status=order.status, to_status=to, actor_kind=actor_kind, reason=reason[:200], at=now
        )
        for order, reason in moves
    ]
    Order.objects.filter(pk__in=[order.pk for order, _reason in moves]).update(status=to, updated_at=now)
    for order, _reason in moves:
        order.status, order.updated_at = to, now
    return OrderEvent.objects.bulk_create(events)
