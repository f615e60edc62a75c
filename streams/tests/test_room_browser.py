"""A viewer in Chromium watches a pin arrive and chats; screenshots of home, room and studio."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone

from catalog.models import Category, Product, ProductImage, Retailer
from retailer.images import draw_product_image
from streams import services
from streams.tests.factories import make_host, make_user, session_cookie

pytestmark = pytest.mark.browser

PRODUCTS = [
    ("phones", "Nova", "Nova X2 smartphone 256 GB, midnight blue", "3999.00", "3499.00", 120),
    ("appliances", "Breeze", "Breeze quiet air fryer 5.5 L", "699.00", "499.00", 8),
    ("beauty", "Lumi", "Lumi hydrating serum 30 ml", "259.00", "199.00", 60),
]


def picture(name: str, category: str, brand: str, variant: int = 0) -> str:
    path = settings.MEDIA_ROOT / "products" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    draw_product_image(path, category=category, brand=brand, variant=variant)
    return f"{settings.MEDIA_URL}products/{name}.png"


def build_rooms():
    host = make_host("lena")
    host.user.display_name = "Lena Wu"
    host.user.save()
    retailer, _ = Retailer.objects.get_or_create(code="jdm", defaults={"name": "JD Mall Self-Operated"})
    room = services.room_create(
        host=host, title="Friday tech & kitchen deals", description="Phones, air fryers and skincare at live prices.",
        scheduled_start=timezone.now() + timedelta(minutes=5),
    )  # fmt: skip
    cover = settings.MEDIA_ROOT / "products" / "cover.png"
    picture("cover", "home", "LIVE")
    room.cover.save("cover.png", ContentFile(cover.read_bytes()))
    for i, (cat, brand, title, list_price, live_price, stock) in enumerate(PRODUCTS):
        category, _ = Category.objects.get_or_create(retailer=retailer, code=cat, defaults={"name": cat.title()})
        product = Product.objects.create(
            retailer=retailer, sku=f"BR{i}", category=category, title=title, brand=brand,
            list_price=Decimal(list_price), self_operated=True, in_feed=True, sellable=True, retailer_stock=stock,
        )  # fmt: skip
        ProductImage.objects.create(product=product, url=picture(f"br{i}", cat, brand, i))
        services.shelf_add(room=room, product_id=product.pk, live_price=live_price, by=host.user)
    services.room_go_live(room=room)
    fans = [make_user(name) for name in ("mia", "jun", "omar")]
    for fan, text in zip(fans, ["Is the fryer dishwasher safe?", "Just ordered the serum!", "Show the phone camera"]):
        services.chat_post(room=room, user=fan, text=text)
    other = make_host("kai")
    services.room_create(
        host=other, title="Phone week: flagships compared", scheduled_start=timezone.now() + timedelta(hours=3)
    )
    old = services.room_create(
        host=other, title="Back-to-school laptops", scheduled_start=timezone.now() - timedelta(days=1)
    )
    services.room_go_live(room=old)
    services.room_end(room=old)
    room.refresh_from_db()
    return room, host


def login(context, live_url, user):
    name, value = session_cookie(user).decode().split("=", 1)
    context.add_cookies([{"name": name, "value": value, "url": live_url}])


def test_viewer_sees_a_pin_arrive_and_chats(live_url, page, browser, screenshot):
    room, host = build_rooms()
    viewer = make_user("ada")
    login(page.context, live_url, viewer)

    page.goto(live_url + "/")
    page.wait_for_selector(".tile")
    screenshot("home")

    page.goto(live_url + room.get_absolute_url())
    page.wait_for_selector('#conn[data-state="live"]', state="attached")
    assert page.locator(".chat-msg").count() == 3
    assert page.locator("#pinned-card").is_hidden()

    first = room.shelf.order_by("position").first()
    services.room_pin(room=room, item_id=first.pk, by=host.user)
    card = page.locator("#pinned-card")
    card.wait_for(state="visible")
    assert "Nova X2 smartphone" in card.inner_text()
    assert "Sold and shipped by JD Mall Self-Operated" in card.inner_text()
    assert card.locator('[data-action="buy"]').get_attribute("data-item-id") == str(first.pk)

    page.fill("#chat-input", "<b>not bold</b> how long is the battery?")
    page.click("#chat-form button")
    mine = page.locator(".chat-msg", has_text="how long is the battery?")
    mine.wait_for()
    assert "<b>not bold</b>" in mine.inner_text()
    assert mine.locator("b").count() == 0

    page.click("#shelf-btn")
    page.locator("#shelf-drawer .shelf-row").first.wait_for()
    assert page.locator("#shelf-drawer .shelf-row").count() == 3
    page.click("#shelf-close")
    page.wait_for_timeout(1200)  # the counts frame (viewers, likes) arrives within a second
    screenshot("room")

    host_context = browser.new_context()
    login(host_context, live_url, host.user)
    studio = host_context.new_page()
    studio.set_viewport_size({"width": 1280, "height": 860})
    studio.goto(live_url + "/studio/")
    studio.screenshot(path=str(settings.BASE_DIR / "var" / "screenshots" / "studio-1280.png"), full_page=True)
    studio.goto(live_url + f"/studio/rooms/{room.pk}/")
    studio.wait_for_selector('#conn[data-state="live"]', state="attached")
    studio.locator("#search-results li").first.wait_for()
    studio.click(f'[data-pin="{room.shelf.order_by("position").last().pk}"]')
    page.locator("#pinned-card", has_text="Lumi hydrating serum").wait_for()
    studio.screenshot(path=str(settings.BASE_DIR / "var" / "screenshots" / "studio-room-1280.png"), full_page=True)
    studio.set_viewport_size({"width": 390, "height": 844})
    studio.screenshot(path=str(settings.BASE_DIR / "var" / "screenshots" / "studio-room-390.png"), full_page=True)
    host_context.close()
