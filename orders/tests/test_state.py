"""The order state machine: every legal move works and is audited, every other is refused."""

import itertools

import pytest
from django.db import transaction

from orders import errors
from orders.models import Order, OrderEvent
from orders.state import TRANSITIONS, can_move, transition, transition_many
from orders.tests import factories as f

pytestmark = pytest.mark.django_db

STATUSES = [s.value for s in Order.Status]
ALL_PAIRS = list(itertools.product(STATUSES, STATUSES))


def make_order(status):
    buyer = f.user()
    return Order.objects.create(
        number=f"LM2611-T{buyer.pk:05d}", buyer=buyer, room=f.room(), status=status, subtotal=1, total=1,
        address={}, idempotency_key=f"state-{buyer.pk}", request_fingerprint="x",
    )  # fmt: skip


def test_the_happy_path_and_fulfilment_statuses_are_declared():
    path = ["pending_payment", "paid", "sent_to_retailer", "accepted", "packed", "shipped", "delivered", "refunded"]
    assert all(can_move(a, b) for a, b in itertools.pairwise(path))
    for final in ("payment_failed", "expired", "cancelled", "refunded"):
        assert TRANSITIONS[final] == frozenset()


@pytest.mark.parametrize("from_status,to_status", ALL_PAIRS)
def test_every_move(from_status, to_status):
    order = make_order(from_status)
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if can_move(from_status, to_status):
            event = transition(order=locked, to=to_status, actor_kind=OrderEvent.Actor.SYSTEM, reason="test")
            assert (event.from_status, event.to_status) == (from_status, to_status)
        else:
            with pytest.raises(errors.IllegalTransition) as exc:
                transition(order=locked, to=to_status, actor_kind=OrderEvent.Actor.SYSTEM)
            assert exc.value.message.startswith("An order that is")
    order.refresh_from_db()
    expected = to_status if can_move(from_status, to_status) else from_status
    assert order.status == expected
    assert OrderEvent.objects.filter(order=order).count() == (1 if can_move(from_status, to_status) else 0)


def test_transition_outside_a_transaction_is_refused():
    order = make_order("pending_payment")
    with pytest.raises(RuntimeError):
        # the test database wraps us in a transaction: leave it for this check
        from django.db import connection

        atomic = connection.in_atomic_block
        connection.in_atomic_block = False
        try:
            transition(order=order, to="paid", actor_kind=OrderEvent.Actor.SYSTEM)
        finally:
            connection.in_atomic_block = atomic
    assert Order.objects.get(pk=order.pk).status == "pending_payment"


def test_moving_many_orders_at_once_audits_each_or_moves_none():
    sent = [make_order("sent_to_retailer") for _ in range(3)]
    with transaction.atomic():
        events = transition_many(
            moves=[(o, f"Accepted ({o.number})") for o in sent], to="accepted", actor_kind="retailer"
        )
    assert len(events) == 3
    for order in sent:
        order.refresh_from_db()
        assert order.status == "accepted"
        event = order.events.get()
        assert (event.from_status, event.to_status, event.reason) == ("sent_to_retailer", "accepted",
                                                                      f"Accepted ({order.number})")  # fmt: skip
    # One illegal move in the lot: nothing moves, nothing is recorded.
    mixed = [make_order("sent_to_retailer"), make_order("cancelled")]
    with pytest.raises(errors.IllegalTransition), transaction.atomic():
        transition_many(moves=[(o, "") for o in mixed], to="accepted", actor_kind="retailer")
    assert [Order.objects.get(pk=o.pk).status for o in mixed] == ["sent_to_retailer", "cancelled"]
    assert not OrderEvent.objects.filter(order__in=mixed).exists()
    # Moves that stamp a time (paid, a final status) go through transition() alone.
    with pytest.raises(ValueError), transaction.atomic():
        transition_many(moves=[(mixed[0], "")], to="cancelled", actor_kind="retailer")
