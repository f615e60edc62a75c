"""The embedded default's beat runs the periodic jobs a `celery beat` would."""

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from celery.schedules import crontab
from django.utils import timezone

from config import embedded_beat
from orders import services as order_services
from orders.models import Order
from orders.tests import factories as f


def test_intervals_are_read_from_numbers_and_timedeltas_but_not_crontabs():
    assert embedded_beat.interval_seconds(15) == 15.0
    assert embedded_beat.interval_seconds(timedelta(minutes=2)) == 120.0
    assert embedded_beat.interval_seconds(crontab(minute=0)) is None


def test_every_job_in_the_schedule_would_run(settings):
    entries = embedded_beat.schedule_entries(now=0.0)

    assert {name for _, _, name, _ in entries} == set(settings.CELERY_BEAT_SCHEDULE)
    assert all(due == every for due, every, _, _ in entries)


@pytest.mark.django_db(transaction=True)
def test_a_due_expiry_job_returns_an_unpaid_reservations_stock(settings):
    settings.PAYMENT_SANDBOX_CONFIRM_SECONDS = 3600  # the bank never answers during the test
    item = f.shelf_item(stock=10)
    buyer = f.user()
    result = order_services.order_place(
        user=buyer, shelf_item_id=item.pk, quantity=2, address_id=f.address(buyer).pk,
        payment_method=f.CARD_CONFIRM, idempotency_key="embedded-beat-1",
    )  # fmt: skip
    order = Order.objects.get(number=result.order.number)
    assert order.status == Order.Status.PENDING_PAYMENT
    Order.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    entries = [
        [0.0, 15.0, "orders-expire-reservations", "orders.tasks.expire_reservations"],
        [time.monotonic() + 3600, 300.0, "catalog-sync", "catalog.tasks.sync_catalog"],
    ]

    with ThreadPoolExecutor(1) as beat_thread:  # its own thread and connection, as in a web process
        ran = beat_thread.submit(embedded_beat.run_due, entries, time.monotonic()).result(timeout=60)

    order.refresh_from_db()
    assert ran == ["orders-expire-reservations"]
    assert order.status == Order.Status.EXPIRED
    assert entries[0][0] > time.monotonic()  # next run is scheduled, not repeated at once
