"""Input that looks like a number but is not one gets a clear refusal, never a 500."""

import json

import pytest
from django.urls import reverse

from orders.models import FlashSale, Order
from orders.tests import factories as f

pytestmark = pytest.mark.django_db

ODD_NUMBERS = ["²", "٣", "9" * 5000, "1.5", "-1", " "]


@pytest.mark.parametrize("odd", ODD_NUMBERS)
def test_quote_and_buy_refuse_odd_numbers_clearly_and_place_nothing(client, odd):
    item = f.shelf_item(stock=10)
    buyer = f.user()
    address = f.address(buyer)
    client.force_login(buyer)

    quote = client.get(reverse("orders:quote"), {"item": item.pk, "quantity": odd})
    buy = client.post(
        reverse("orders:buy"),
        json.dumps({"item": item.pk, "quantity": odd, "address": address.pk, "card": f.CARD_OK,
                    "key": "odd-input-key-1"}),
        content_type="application/json",
    )  # fmt: skip
    buy_bad_address = client.post(
        reverse("orders:buy"),
        json.dumps({"item": item.pk, "quantity": 1, "address": odd, "card": f.CARD_OK, "key": "odd-input-key-2"}),
        content_type="application/json",
    )

    for response in (quote, buy, buy_bad_address):
        assert 400 <= response.status_code < 500
        assert response.json()["ok"] is False and response.json()["message"]
    assert not Order.objects.exists()


@pytest.mark.parametrize("when", ["2030-02-30T10:00:00+00:00", "2030-01-01T25:00:00"])
def test_an_impossible_flash_sale_start_time_is_refused_clearly(client, when):
    item = f.shelf_item(stock=10)
    client.force_login(item.room.host.user)

    response = client.post(
        reverse("orders:flash_sale_create", args=[item.room_id]),
        json.dumps({"item": item.pk, "sale_price": "9.00", "quantity": 5, "per_user_limit": 1,
                    "duration_seconds": 60, "starts_at": when}),
        content_type="application/json",
    )  # fmt: skip

    assert 400 <= response.status_code < 500
    assert "start time" in response.json()["message"]
    assert not FlashSale.objects.exists()
