"""Fixtures for fulfilment: a live room whose product the sandbox retailer really stocks."""

from dataclasses import dataclass

import pytest

from orders import services as order_services
from orders.models import Order
from orders.tests import factories as f
from retailer.services import product_put


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.PAYMENT_SANDBOX_CONFIRM_SECONDS = 0
    settings.ORDERS_STOCK_COALESCE_SECONDS = 0.05
    settings.FULFILMENT_BACKOFF_SECONDS = 1
    settings.RETAILER_RETRIES = 0
    settings.RETAILER_SANDBOX_STEP_SECONDS = 5
    settings.RETAILER_CALLBACK_URL = ""
    # A drainer an earlier test left behind (killed, or queued with no worker) holds the kick for a while.
    from fulfilment.services import kick_flag
    from streams.fanout import sync_redis

    sync_redis().delete(kick_flag())


@dataclass
class Shop:
    item: object
    host: object

    def buy(self, quantity: int = 1, buyer=None) -> Order:
        buyer = buyer or f.user()
        addr = f.address(buyer)
        result = order_services.order_place(
            user=buyer, shelf_item_id=self.item.pk, quantity=quantity, address_id=addr.pk,
            payment_method=f.CARD_OK, idempotency_key=f"key-{buyer.pk}-{quantity}-x",
        )  # fmt: skip
        assert result.ok, result.message
        return Order.objects.get(number=result.order.number)


def make_shop(*, retailer_stock: int = 50, room_stock: int = 50, limit: int = 5) -> Shop:
    item = f.shelf_item(stock=room_stock, limit=limit)
    product_put(sku=item.product.sku, stock=retailer_stock, title=item.product.title)
    return Shop(item=item, host=item.room.host)


@pytest.fixture
def shop(db):
    return make_shop()


@pytest.fixture(params=["inprocess", "http"])
def backend(request, transactional_db, settings):
    """The hand-off tests run against both retailer backends: in-process and signed HTTP over a real socket."""
    settings.RETAILER_BACKEND = request.param
    if request.param == "http":
        server = request.getfixturevalue("asgi_server")
        settings.RETAILER_API_URL = server.url + "/retailer-api/"
        settings.RETAILER_CALLBACK_URL = server.url + "/fulfilment/retailer/callback"
    return request.param
