"""One order followed in the browser: paid -> with the retailer -> shipped -> delivered -> returned
and refunded; then the host's earnings and staff's dead-letter view. Screenshots at 390 and 1280."""

from datetime import timedelta

import pytest
from django.utils import timezone

from fulfilment import services
from fulfilment.models import OutboxMessage
from fulfilment.tests.conftest import make_shop
from orders.tests import factories as f
from retailer import fulfilment as sandbox
from retailer.services import set_fault
from streams.tests.test_room_browser import login

pytestmark = pytest.mark.browser


def later(seconds):
    return timezone.now() + timedelta(seconds=seconds)


def deliver_all():
    for msg in OutboxMessage.objects.filter(status="pending"):
        services.outbox_deliver(message_id=msg.pk, now=later(1))


def test_one_order_from_purchase_to_delivered_and_returned(live_url, page, screenshot, settings):
    settings.RETAILER_BACKEND = "inprocess"
    settings.FULFILMENT_MAX_ATTEMPTS = 2
    shop = make_shop()
    buyer = f.user("mei", display_name="Mei")
    order = shop.buy(buyer=buyer)
    kept = shop.buy()
    login(page.context, live_url, buyer)

    page.goto(live_url + order.get_absolute_url())
    deliver_all()  # the worker's job: the retailer accepts
    page.wait_for_selector('#order-status[data-status="accepted"]', timeout=15000)
    assert page.locator("#cancel-order").is_visible()
    screenshot("fulfil-accepted")

    sandbox.sandbox_tick(now=later(10))  # packed
    sandbox.sandbox_tick(now=later(20))  # shipped: carrier and tracking number
    page.wait_for_selector("#waybill", timeout=15000)
    order.refresh_from_db()
    assert page.locator("#waybill").inner_text() == order.handoff.waybill
    assert page.locator("#timeline").get_by_text("Shipped with").count() == 1
    screenshot("fulfil-shipped")

    sandbox.sandbox_tick(now=later(30))  # delivered
    page.wait_for_selector('#order-status[data-status="delivered"]', timeout=15000)
    page.click("#return-box summary")
    page.select_option("#return-reason", "Arrived damaged")
    screenshot("fulfil-return-form")
    page.click("#request-return")
    page.wait_for_selector('.as-item[data-status="requested"]')
    deliver_all()  # the return request reaches the retailer
    sandbox.sandbox_tick(now=later(60))  # its decision comes back by callback; the refund follows
    page.reload()
    page.wait_for_selector('#order-status[data-status="refunded"]', timeout=15000)
    assert page.locator('.as-item[data-status="refunded"]').count() == 1
    screenshot("fulfil-refunded")

    # The host: one line reversed by the return, one pending (a third settles later).
    deliver_all()
    for step in (10, 20, 30):
        sandbox.sandbox_tick(now=later(step))
    settled = shop.buy()
    deliver_all()
    for step in (10, 20, 30):
        sandbox.sandbox_tick(now=later(step))
    services.commissions_settle(now=later(9 * 86400))
    kept.refresh_from_db()
    settled.refresh_from_db()
    login(page.context, live_url, shop.host.user)
    page.goto(live_url + "/fulfilment/earnings/")
    page.wait_for_selector("#earn-totals")
    assert "¥" in page.locator('[data-k="reversed"]').inner_text()
    screenshot("fulfil-earnings")
    csv = page.request.get(live_url + f"/fulfilment/earnings/rooms/{shop.item.room_id}.csv")
    assert csv.ok and order.number in csv.text() and "reversed" in csv.text()

    # Staff: a hand-off that failed every attempt waits in the dead-letter view.
    set_fault(kind="error", times=10, endpoint="orders/submit")
    stuck = shop.buy()
    deliver_all()
    deliver_all()
    assert OutboxMessage.objects.get(order=stuck, kind="submit_order").status == "dead"
    staff = f.user("ops", is_staff=True, is_superuser=True)
    login(page.context, live_url, staff)
    page.goto(live_url + "/admin/fulfilment/outboxmessage/?status__exact=dead")
    page.wait_for_selector("#result_list")
    assert page.get_by_text(f"submit:{stuck.number}").count() == 1
    screenshot("fulfil-admin-dead", widths=((1280, 860), (390, 844)))
    page.set_viewport_size({"width": 1280, "height": 860})
    page.get_by_text(f"submit:{stuck.number}").click()
    page.wait_for_selector(".inline-group")
    screenshot("fulfil-admin-attempts", widths=((1280, 860),))
