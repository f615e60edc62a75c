"""The hand-off, run against BOTH retailer backends: in-process and signed HTTP over a real socket."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from fulfilment import services
from fulfilment.models import CommissionEntry, DeliveryAttempt, Handoff, OutboxMessage
from fulfilment.tests.conftest import make_shop
from orders.models import Order, Payment, SandboxRefund, StockBucket
from retailer import fulfilment as sandbox
from retailer.services import clear_faults, product_stock, sandbox_orders, set_fault
from streams.models import Notification


def message_for(order: Order) -> OutboxMessage:
    return OutboxMessage.objects.get(order=order, kind="submit_order")


def deliver(order: Order, now=None) -> str:
    return services.outbox_deliver(message_id=message_for(order).pk, now=now)


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def test_confirming_writes_one_outbox_row_in_the_same_transaction(shop):
    order = shop.buy()
    msg = message_for(order)
    assert msg.status == "pending" and msg.payload["key"] == order.number
    assert msg.payload["lines"][0]["sku"] == shop.item.product.sku
    assert CommissionEntry.objects.filter(order=order, status="pending").count() == 1
    # A second confirm of the same order cannot add a second row.
    with transaction.atomic():
        services.order_confirmed(order=order)
    assert OutboxMessage.objects.filter(order=order).count() == 1


def test_a_rolled_back_confirmation_leaves_no_outbox_row(shop):
    order = shop.buy()
    OutboxMessage.objects.all().delete()
    CommissionEntry.objects.all().delete()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.order_confirmed(order=order)
        raise RuntimeError("the confirming transaction fails after the seam")
    assert not OutboxMessage.objects.exists() and not CommissionEntry.objects.exists()


def test_the_order_reaches_the_retailer_once_even_when_delivered_twice(backend):
    shop = make_shop(retailer_stock=10)
    order = shop.buy(quantity=2)
    assert deliver(order) == "ok"
    assert deliver(order) == "skipped"  # a duplicate task finds the row done
    order.refresh_from_db()
    assert order.status == "accepted"
    held = sandbox_orders(key=order.number)
    assert len(held) == 1 and held[0]["status"] == "accepted"
    assert order.handoff.retailer_order_id == held[0]["reference"]
    assert product_stock(sku=shop.item.product.sku) == 8
    statuses = list(order.events.values_list("to_status", flat=True))
    assert statuses[-3:] == ["paid", "sent_to_retailer", "accepted"]


@pytest.mark.parametrize("orders", [1, 8])
def test_a_hand_off_costs_the_same_statements_for_one_order_or_eight(shop, orders, django_assert_max_num_queries):
    """The hot path (docs/performance.md): our side claims the due submits and marks their
    orders sent in one transaction, records the answers in another; the sandbox's
    batch submit, in-process here, takes one more. Bulk statements, so the count does
    not grow with the batch."""
    placed = [shop.buy() for _ in range(orders)]
    message_id = message_for(placed[0]).pk
    with django_assert_max_num_queries(28):
        assert services.outbox_deliver(message_id=message_id) == "ok"
    for order in placed:
        order.refresh_from_db()
        assert order.status == "accepted" and order.handoff.accepted_at is not None
    assert len(sandbox_orders()) == orders


def test_an_answer_after_an_early_callback_fills_in_the_handoff_it_made(shop):
    order = shop.buy()
    early = timezone.now() - timedelta(minutes=1)
    Handoff.objects.create(order=order, carrier="SF Express", waybill="SF1", accepted_at=early)
    assert deliver(order) == "ok"
    handoff = Handoff.objects.get(order=order)
    assert handoff.retailer_order_id == sandbox_orders(key=order.number)[0]["reference"]
    assert handoff.accepted_at == early and handoff.waybill == "SF1"


def test_a_lost_answer_is_retried_and_never_ships_twice(backend, settings):
    shop = make_shop(retailer_stock=10)
    order = shop.buy()
    # The retailer takes the order but the answer never arrives (HTTP: the client times out).
    settings.RETAILER_TIMEOUT = 1
    set_fault(kind="timeout", endpoint="orders/submit", delay_seconds=1.5 if backend == "http" else 0)
    assert deliver(order) == "retry"
    msg = message_for(order)
    assert msg.status == "pending" and msg.next_attempt_at > timezone.now() and "timeout" in msg.last_error
    assert deliver(order) == "skipped"  # not due yet: backoff
    assert deliver(order, now=later(60)) == "ok"
    order.refresh_from_db()
    assert order.status == "accepted"
    held = sandbox_orders(key=order.number)
    assert len(held) == 1 and held[0]["times_submitted"] == 2
    assert product_stock(sku=shop.item.product.sku) == 9  # one shipment's worth, not two
    attempts = list(DeliveryAttempt.objects.filter(message=msg).values_list("outcome", flat=True))
    assert attempts == ["retry", "ok"]


def test_a_refusal_cancels_refunds_and_reverses_everything(backend):
    shop = make_shop(retailer_stock=0, room_stock=20)
    order = shop.buy(quantity=2)
    bucket = StockBucket.objects.get(shelf_item=shop.item, kind="regular")
    assert bucket.available == 18
    assert deliver(order) == "ok"
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert Payment.objects.get(order=order).status == "refunded"
    bucket.refresh_from_db()
    assert bucket.available == 20 and bucket.sold == 0
    assert CommissionEntry.objects.get(order=order).status == "reversed"
    assert Notification.objects.filter(user=order.buyer, text__contains="couldn't ship").exists()
    assert sandbox_orders(key=order.number)[0]["status"] == "refused"


def test_the_order_moves_to_delivered_through_signed_callbacks(backend):
    shop = make_shop()
    order = shop.buy()
    deliver(order)
    for step in (1, 2, 3):
        sandbox.sandbox_tick(now=later(10 * step))
    order.refresh_from_db()
    assert order.status == "delivered"
    assert order.handoff.carrier and order.handoff.waybill
    shipped = order.events.get(to_status="shipped")
    assert order.handoff.waybill in shipped.reason
    assert order.handoff.return_window_ends > timezone.now() + timedelta(days=6)
    assert CommissionEntry.objects.get(order=order).settle_after == order.handoff.return_window_ends
    assert Notification.objects.filter(user=order.buyer, text__contains="has shipped").exists()


def test_cancel_after_hand_off_goes_through_the_retailer(backend):
    shop = make_shop(retailer_stock=5)
    order = shop.buy()
    deliver(order)
    assert product_stock(sku=shop.item.product.sku) == 4
    services.cancel_request(user=order.buyer, order_number=order.number)
    order.refresh_from_db()
    assert order.status == "accepted"  # asked, not yet answered
    cancel = OutboxMessage.objects.get(order=order, kind="cancel_order")
    assert services.outbox_deliver(message_id=cancel.pk) == "ok"
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert Payment.objects.get(order=order).status == "refunded"
    assert product_stock(sku=shop.item.product.sku) == 5
    assert order.after_sales.get().status == "approved"


def test_return_after_delivery_refunds_through_the_gateway(backend):
    shop = make_shop()
    order = shop.buy()
    deliver(order)
    for step in (1, 2, 3):
        sandbox.sandbox_tick(now=later(10 * step))
    request = services.return_request(user=order.buyer, order_number=order.number, reason="Arrived damaged")
    msg = OutboxMessage.objects.get(order=order, kind="request_return")
    assert services.outbox_deliver(message_id=msg.pk) == "ok"
    sandbox.sandbox_tick(now=later(60))  # the retailer decides and calls back
    request.refresh_from_db()
    order.refresh_from_db()
    assert request.status == "refunded" and request.amount == order.total
    assert order.status == "refunded"
    assert services.return_refund(request_id=request.pk) is False  # asked again: nothing moves
    refunds = SandboxRefund.objects.filter(idempotency_key=f"return:{request.pk}")
    assert [r.amount for r in refunds] == [order.total]
    assert Payment.objects.get(order=order).status == "refunded"
    assert CommissionEntry.objects.get(order=order).status == "reversed"


def test_errors_back_off_then_dead_letter_and_staff_retry_works(shop, settings, admin_client):
    settings.FULFILMENT_MAX_ATTEMPTS = 3
    order = shop.buy()
    fault = set_fault(kind="error", times=100, endpoint="orders/submit")
    msg = message_for(order)
    delays = []
    for n in range(3):
        assert services.outbox_deliver(message_id=msg.pk, now=later(3600 * n)) in ("retry", "dead")
        msg.refresh_from_db()
        delays.append(msg.next_attempt_at)
    assert msg.status == "dead" and msg.attempts == 3 and "injected_fault" in msg.last_error
    assert list(msg.delivery_attempts.values_list("outcome", flat=True)) == ["retry", "retry", "dead"]
    assert services.outbox_deliver(message_id=msg.pk, now=later(10**6)) == "skipped"  # dead stays dead
    fault.remaining = 0
    fault.save()
    # Staff: one action in admin.
    resp = admin_client.post("/admin/fulfilment/outboxmessage/", {"action": "retry_now", "_selected_action": [msg.pk]})
    assert resp.status_code == 302
    msg.refresh_from_db()
    assert msg.status == "pending" and msg.attempts == 0
    assert services.outbox_deliver(message_id=msg.pk) == "ok"
    order.refresh_from_db()
    assert order.status == "accepted"
    clear_faults()


def test_backoff_grows_and_is_jittered(settings):
    settings.FULFILMENT_BACKOFF_SECONDS = 2
    for n in range(1, 6):
        ceiling = 2 * 2 ** (n - 1)
        samples = {services.backoff_delay(n) for _ in range(20)}
        assert all(ceiling / 2 <= s <= ceiling for s in samples)
        assert len(samples) > 1


def test_buyer_cancel_before_hand_off_withdraws_the_message(shop):
    from orders import services as order_services

    order = shop.buy()
    order_services.order_cancel(user=order.buyer, order_number=order.number)
    msg = message_for(order)
    assert msg.status == "withdrawn"
    assert services.outbox_deliver(message_id=msg.pk) == "skipped"
    assert sandbox_orders(key=order.number) == []
    assert CommissionEntry.objects.get(order=order).status == "reversed"


def test_commission_settles_after_the_return_window(shop):
    order = shop.buy()
    deliver(order)
    for step in (1, 2, 3):
        sandbox.sandbox_tick(now=later(10 * step))
    entry = CommissionEntry.objects.get(order=order)
    assert entry.amount == (order.total * Decimal("0.05")).quantize(Decimal("0.01"))
    assert services.commissions_settle() == 0
    assert services.commissions_settle(now=later(8 * 86400)) == 1
    entry.refresh_from_db()
    assert entry.status == "settled"
