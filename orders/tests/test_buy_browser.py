"""A viewer in Chromium buys the pinned product in the room; a declined card and a
sold-out product show their messages; a flash sale counts down, sells and sells out;
the orders pages and the host's panel show it. Screenshots at phone and desktop width."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders import services as order_services
from orders.models import Order, StockBucket
from orders.tests import factories as f
from streams import services
from streams.tests.factories import make_user
from streams.tests.test_room_browser import build_rooms, login

pytestmark = pytest.mark.browser


def buyer(name, display):
    user = make_user(name)
    user.display_name = display
    user.save()
    return user, f.address(user, recipient=display)


def buy_now(user, address, item, qty=1, sale=None, key=None):
    return order_services.order_place(
        user=user, shelf_item_id=item.pk, quantity=qty, address_id=address.pk, payment_method=f.CARD_OK,
        idempotency_key=key or f"bg-{user.pk}-{item.pk}-{qty}", flash_sale_id=sale,
    )  # fmt: skip


def open_sheet(page, button):
    page.locator(button).first.click()
    sheet = page.locator(".sheet")
    sheet.wait_for()
    page.locator('.sheet [data-f="confirm"]:not([disabled])').wait_for()
    return sheet


def test_buy_in_the_room(live_url, page, browser, screenshot):
    room, host = build_rooms()
    phone, fryer, serum = list(room.shelf.order_by("position"))
    viewer, _ = buyer("ada", "Ada Li")
    login(page.context, live_url, viewer)
    services.room_pin(room=room, item_id=phone.pk, by=host.user)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_url + room.get_absolute_url())
    page.wait_for_selector('#conn[data-state="live"]', state="attached")
    page.locator("#pinned-card").wait_for(state="visible")
    page.locator('#pinned-card [data-field="stock"]', has_text="120 left").wait_for()

    # 1. Buy the pinned phone with the card that succeeds.
    sheet = open_sheet(page, '#pinned-card [data-action="buy"]')
    assert "Nova X2 smartphone" in sheet.inner_text()
    page.click('.sheet [data-step="1"]')
    page.locator('.sheet [data-f="total"]', has_text="6998.00").wait_for()
    assert "Ada Li" in page.locator('.sheet [data-f="addresses"]').inner_text()
    page.click('.sheet .chip[title="4242 4242 4242 4242"]')
    screenshot("buy-sheet")
    page.click('.sheet [data-f="confirm"]')
    done = page.locator('.sheet [data-f="done-view"]')
    done.wait_for()
    assert "Order confirmed" in done.inner_text()
    order = Order.objects.get(buyer=viewer)
    assert order.status == "paid" and order.total == Decimal("6998.00")
    assert order.number in done.inner_text()
    screenshot("buy-confirmed")
    page.click('.sheet [data-f="view-order"]')
    page.locator(".sheet #order-panel").wait_for()
    assert "Confirmed" in page.locator(".sheet #order-panel").inner_text()
    assert page.locator("#conn").get_attribute("data-state") == "live"  # the room kept playing
    page.click(".sheet .btn.ghost >> text=Back to the room")
    page.locator('#pinned-card [data-field="stock"]', has_text="118 left").wait_for()

    # 2. A declined card says so, and nothing is charged.
    open_sheet(page, '#pinned-card [data-action="buy"]')
    page.click('.sheet .chip[title="4000 0000 0000 0002"]')
    page.click('.sheet [data-f="confirm"]')
    error = page.locator('.sheet [data-f="error"]')
    error.wait_for()
    assert "declined" in error.inner_text() and "No money was taken" in error.inner_text()
    screenshot("buy-declined")
    page.click(".sheet-x")

    # 3. The fryer sells out while the sheet is open: the buyer is told in plain words.
    services.room_pin(room=room, item_id=fryer.pk, by=host.user)
    page.locator("#pinned-card", has_text="Breeze").wait_for()
    open_sheet(page, '#pinned-card [data-action="buy"]')
    page.click('.sheet .chip[title="4242 4242 4242 4242"]')
    for i in range(2):
        rival, addr = buyer(f"rival{i}", f"Rival {i}")
        buy_now(rival, addr, fryer, qty=4)
    assert StockBucket.objects.get(shelf_item=fryer, kind="regular").available == 0
    page.click('.sheet [data-f="confirm"]')
    error.wait_for()
    page.locator('.sheet [data-f="error"]', has_text="sold out").wait_for()
    page.click(".sheet-x")
    page.locator('#pinned-card [data-action="buy"]', has_text="Sold out").wait_for()
    page.wait_for_timeout(300)
    screenshot("room-sold-out")

    # 4. A flash sale: countdown, stock falling, sold out once.
    order_services.flash_sale_start(
        user=host.user, shelf_item_id=serum.pk, sale_price="149.00", quantity=3, per_user_limit=2,
        duration_seconds=120, starts_at=timezone.now() + timedelta(seconds=4),
    )  # fmt: skip
    flash = page.locator("#flash-card")
    flash.wait_for()
    page.locator("#flash-card .flash-clock", has_text="Starts in").wait_for()
    screenshot("flash-countdown")
    page.locator("#flash-card .flash-clock", has_text="Ends in").wait_for(timeout=10000)
    sale_id = serum.flash_sales.get().pk
    fan, fan_addr = buyer("mei", "Mei Chen")
    buy_now(fan, fan_addr, serum, qty=2, sale=sale_id)
    page.locator('#flash-card [data-f="left"]', has_text="1 of 3 left").wait_for()
    page.locator(".ticker", has_text="Me** just bought 2").wait_for()
    screenshot("flash-running")
    page.click('#flash-card [data-f="buy"]')
    page.locator('.sheet [data-f="sale-badge"]').wait_for()
    page.locator('.sheet [data-f="confirm"]:not([disabled])').wait_for()
    assert page.locator('.sheet [data-f="unit"]').inner_text() == "149.00"
    page.click('.sheet .chip[title="4242 4242 4242 4242"]')
    page.click('.sheet [data-f="confirm"]')
    page.locator('.sheet [data-f="done-view"]').wait_for()
    page.click(".sheet [data-close].btn")
    page.locator("#flash-card .flash-clock", has_text="Sold out").wait_for()
    assert flash.get_attribute("data-phase") == "sold_out"
    screenshot("flash-sold-out")

    # 5. My orders: every order, its status and timeline.
    page.goto(live_url + "/orders/")
    rows = page.locator(".order-row")
    assert rows.count() == 3
    text = page.locator("#order-list").inner_text()
    assert order.number in text and "Payment declined" in text and "Confirmed" in text
    screenshot("orders")
    page.goto(live_url + order.get_absolute_url())
    assert "Payment received" in page.locator("#timeline").inner_text()
    screenshot("order-detail")

    # 6. The host's panel shows the sale.
    host_context = browser.new_context()
    login(host_context, live_url, host.user)
    studio = host_context.new_page()
    studio.set_viewport_size({"width": 1280, "height": 860})
    studio.goto(live_url + f"/studio/rooms/{room.pk}/")
    studio.locator("#sales-orders", has_text="5").wait_for()
    assert studio.locator("#sales-units").inner_text() == "13"
    assert "Nova X2" in studio.locator("#sales-products").inner_text()
    assert "¥" in studio.locator("#panel-sales .value").inner_text()
    from django.conf import settings

    studio.screenshot(path=str(settings.BASE_DIR / "var" / "screenshots" / "studio-sales-1280.png"), full_page=True)
    studio.set_viewport_size({"width": 390, "height": 844})
    studio.screenshot(path=str(settings.BASE_DIR / "var" / "screenshots" / "studio-sales-390.png"), full_page=True)
    host_context.close()
