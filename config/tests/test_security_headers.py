"""Security headers on every page, and no inline script or style the CSP would block
(issue 17, finding 6: no Content-Security-Policy on any page)."""

from html.parser import HTMLParser

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.models import User
from catalog.models import Product
from orders.models import Order
from orders.tests import factories as f
from streams.models import Room

pytestmark = pytest.mark.django_db


class InlineFinder(HTMLParser):
    """Collects what a CSP without 'unsafe-inline' would block."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self._in_inline = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in attrs:
            if name == "style" or name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
        if attrs.get("href", "").startswith("javascript:"):
            self.found.append(f"<{tag} href=javascript:...>")
        if tag in ("script", "style") and "src" not in attrs and "nonce" not in attrs:
            if tag == "script" and attrs.get("type") in ("application/json", "text/template"):
                return
            self._in_inline = tag

    def handle_data(self, data):
        if self._in_inline and data.strip():
            self.found.append(f"inline <{self._in_inline}>: {data.strip()[:60]}")

    def handle_endtag(self, tag):
        self._in_inline = None


@pytest.fixture
def demo(settings):
    from orders import services

    settings.PAYMENT_SANDBOX_CONFIRM_SECONDS = 0
    call_command("seed_demo", verbosity=0)
    viewer = User.objects.get(username="viewer")
    item = f.shelf_item(stock=5)
    placed = services.order_place(user=viewer, shelf_item_id=item.pk, quantity=1, address_id=f.address(viewer).pk,
                                  payment_method=f.CARD_OK, idempotency_key="headers-order-1")  # fmt: skip
    return {"viewer": viewer, "host": User.objects.get(username="host"), "staff": User.objects.get(username="staff"),
            "room": Room.objects.filter(host__user__username="host").first(),
            "order": Order.objects.get(number=placed.order.number)}  # fmt: skip


def pages(demo) -> list[tuple[str | None, str]]:
    room, product = demo["room"], Product.objects.first()
    urls = [
        (None, "/"), (None, reverse("streams:room", args=[room.pk])), (None, reverse("accounts:login")),
        (None, reverse("accounts:signup")), (None, f"/products/{product.pk}/"), (None, "/no-such-page/"),
        ("viewer", reverse("orders:list")), ("viewer", reverse("accounts:addresses")),
        ("viewer", reverse("accounts:address_create")), ("viewer", reverse("streams:notifications")),
        ("viewer", reverse("accounts:host_apply")), ("viewer", reverse("streams:room", args=[room.pk])),
        ("host", reverse("streams:studio")), ("host", reverse("streams:studio_room", args=[room.pk])),
        ("host", reverse("fulfilment:earnings")),
        ("staff", "/admin/"), ("staff", "/admin/orders/order/"), ("staff", "/admin/fulfilment/outboxmessage/"),
        ("staff", "/admin/catalog/product/"), ("staff", "/admin/retailer/sandboxproduct/"),
        ("staff", f"/admin/catalog/product/{product.pk}/change/"), ("staff", "/admin/accounts/user/add/"),
        ("viewer", demo["order"].get_absolute_url()),
    ]  # fmt: skip
    return urls


def test_every_page_carries_the_security_headers_and_nothing_inline(client, demo):
    for who, url in pages(demo):
        client.logout()
        if who:
            client.force_login(demo[who])
        response = client.get(url)
        assert response.status_code in (200, 404), (url, response.status_code)
        csp = response.headers.get("Content-Security-Policy", "")
        assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp, url
        assert "object-src 'none'" in csp and "frame-ancestors 'none'" in csp, url
        assert response.headers["Referrer-Policy"] == "same-origin", url
        assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin", url
        policy = response.headers["Permissions-Policy"]
        studio = url.startswith("/studio/")
        assert ("camera=(self)" in policy and "microphone=(self)" in policy) == studio, url
        assert ("camera=()" in policy and "microphone=()" in policy) == (not studio), url
        finder = InlineFinder()
        finder.feed(response.content.decode())
        assert finder.found == [], (url, finder.found)


def test_the_admins_own_inline_blocks_carry_the_requests_nonce(client, demo):
    client.force_login(demo["staff"])
    response = client.get("/admin/catalog/product/")
    nonce = response.headers["Content-Security-Policy"].split("'nonce-")[1].split("'")[0]
    assert f'nonce="{nonce}"' in response.content.decode()
