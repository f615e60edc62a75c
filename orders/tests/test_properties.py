"""Hypothesis drives random sequences of buy, pay, decline, expire, cancel and callbacks;
after every step the stock is conserved, money adds up and no order is in an illegal state."""

import itertools
from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from orders import errors, services
from orders.models import Order, OrderEvent, OrderLine, Payment, StockBucket
from orders.payments import signed_callback
from orders.state import TRANSITIONS
from orders.tests import factories as f

pytestmark = pytest.mark.django_db

INITIAL = 12
CARDS = st.sampled_from([f.CARD_OK, f.CARD_DECLINE, f.CARD_CONFIRM, None])


class Shop(RuleBasedStateMachine):
    orders = Bundle("orders")

    def __init__(self):
        super().__init__()
        self.item = f.shelf_item(stock=INITIAL, limit=4)
        services.regular_bucket(self.item)
        self.buyers = [(u, f.address(u)) for u in (f.user(), f.user(), f.user())]
        self.keys = 0
        self.deliveries = []

    def order(self, number) -> Order:
        return Order.objects.get(number=number)

    @rule(target=orders, who=st.integers(0, 2), qty=st.integers(1, 3), card=CARDS)
    def buy(self, who, qty, card):
        user, addr = self.buyers[who]
        self.keys += 1
        try:
            result = services.order_place(
                user=user, shelf_item_id=self.item.pk, quantity=qty, address_id=addr.pk, payment_method=card,
                idempotency_key=f"prop-{self.item.pk}-{self.keys}",
            )  # fmt: skip
        except (errors.SoldOut, errors.LimitReached):
            return None
        return result.order.number

    @rule(number=orders, card=st.sampled_from([f.CARD_OK, f.CARD_DECLINE, f.CARD_CONFIRM]))
    def pay(self, number, card):
        if number is None:
            return
        order = self.order(number)
        services.order_pay(user=order.buyer, order_number=number, payment_method=card)

    @rule(number=orders, outcome=st.sampled_from(["succeeded", "declined"]), replay=st.booleans())
    def callback(self, number, outcome, replay):
        if number is None:
            return
        payment = Payment.objects.filter(order__number=number).first()
        if payment is None:
            return
        if replay and self.deliveries:
            body, headers = self.deliveries[-1]
        else:
            body, headers = signed_callback(reference=payment.reference, outcome=outcome)
            self.deliveries.append((body, headers))
        services.payment_callback_handle(body=body, signature=headers["X-Payment-Signature"],
                                         timestamp=headers["X-Payment-Timestamp"])  # fmt: skip

    @rule(number=orders, twice=st.booleans())
    def expire(self, number, twice):
        if number is None:
            return
        later = timezone.now() + timedelta(minutes=11)
        order = self.order(number)
        first = services.reservation_expire(order_id=order.pk, now=later)
        again = services.reservation_expire(order_id=order.pk, now=later) if twice else False
        assert not again
        if first:
            assert self.order(number).status == "expired"

    @rule(number=orders)
    def cancel(self, number):
        if number is None:
            return
        order = self.order(number)
        before = order.status
        try:
            services.order_cancel(user=order.buyer, order_number=number)
        except errors.IllegalTransition:
            assert self.order(number).status == before

    @invariant()
    def stock_is_conserved(self):
        b = StockBucket.objects.get(shelf_item=self.item, kind="regular")
        assert b.available >= 0 and b.reserved >= 0 and b.sold >= 0
        assert b.sold + b.reserved + b.available == INITIAL
        lines = OrderLine.objects.filter(bucket=b)
        pending = lines.filter(order__status="pending_payment").aggregate(n=Sum("quantity"))["n"] or 0
        sold = lines.filter(order__status="paid").aggregate(n=Sum("quantity"))["n"] or 0
        assert (b.reserved, b.sold) == (pending, sold)

    @invariant()
    def money_adds_up_and_states_are_legal(self):
        for order in Order.objects.filter(lines__bucket__shelf_item=self.item).prefetch_related("lines", "events"):
            assert order.status in TRANSITIONS
            assert order.total == sum(line.line_total for line in order.lines.all())
            payment = Payment.objects.filter(order=order).first()
            if order.status == "paid":
                assert payment is not None and payment.status == "succeeded" and payment.amount == order.total
            events = list(order.events.all())
            assert events[0].from_status == "" and events[-1].to_status == order.status
            for a, b in itertools.pairwise(events):
                assert b.from_status == a.to_status and b.to_status in TRANSITIONS[a.to_status]
        assert not OrderEvent.objects.filter(to_status="paid", order__payment__status="declined").exists()


def test_random_sequences_keep_every_invariant():
    run_state_machine_as_test(
        Shop,
        settings=settings(max_examples=60, stateful_step_count=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]),
    )  # fmt: skip
