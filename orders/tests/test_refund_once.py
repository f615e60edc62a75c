"""A payment is paid back at most once, however many workers ask at the same moment."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from orders import services
from orders.models import Order, Payment, SandboxRefund
from orders.tests import factories as f

pytestmark = pytest.mark.django_db(transaction=True)


def paid_order() -> Order:
    item = f.shelf_item(stock=10)
    buyer = f.user()
    result = services.order_place(
        user=buyer, shelf_item_id=item.pk, quantity=1, address_id=f.address(buyer).pk,
        payment_method=f.CARD_OK, idempotency_key="refund-once-1",
    )  # fmt: skip
    assert result.ok
    return Order.objects.get(number=result.order.number)


def in_threads(fn, n: int, **kwargs) -> list:
    def call():
        try:
            return fn(**kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(n) as pool:
        return [future.result() for future in [pool.submit(call) for _ in range(n)]]


def test_six_workers_refunding_one_cancelled_payment_move_money_once():
    order = paid_order()
    Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELLED)
    payment = Payment.objects.get(order=order)

    results = in_threads(services.refund_cancelled, 6, payment_id=payment.pk)

    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDED
    assert results.count(True) == 1
    refunds = SandboxRefund.objects.filter(reference=payment.reference)
    assert [(r.amount, r.idempotency_key) for r in refunds] == [(payment.amount, f"payment:{payment.pk}:full")]


def test_a_late_payment_refund_and_a_cancellation_refund_of_one_payment_pay_back_once():
    order = paid_order()
    Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELLED)
    payment = Payment.objects.get(order=order)

    services.refund_late_payment(payment_id=payment.pk)
    Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.SUCCEEDED)  # as if the update was lost
    services.refund_cancelled(payment_id=payment.pk)

    assert SandboxRefund.objects.filter(reference=payment.reference).count() == 1
