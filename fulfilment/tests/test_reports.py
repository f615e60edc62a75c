"""What hosts and staff read about money: the earnings CSV and the per-room admin report."""

import pytest
from django.urls import reverse

from fulfilment.tests.conftest import make_shop
from orders.models import Order

pytestmark = pytest.mark.django_db


def test_staff_room_report_shows_each_rooms_own_gmv_and_commission(admin_client):
    small, big = make_shop(), make_shop()
    small.buy(quantity=1)
    big.buy(quantity=3)
    gmv = {shop.item.room_id: Order.objects.get(room_id=shop.item.room_id).total for shop in (small, big)}

    page = admin_client.get(reverse("admin:fulfilment_roommoney_changelist")).content.decode()

    for room_id, total in gmv.items():
        assert f"{total}" in page, f"room {room_id}'s GMV {total} missing"
    assert gmv[small.item.room_id] != gmv[big.item.room_id]


def test_earnings_csv_never_hands_a_spreadsheet_a_formula(client):
    shop = make_shop()
    order = shop.buy()
    order.lines.update(title='=HYPERLINK("http://x","click")')  # the title the line was sold under
    client.force_login(shop.host.user)

    response = client.get(reverse("fulfilment:earnings_csv", args=[shop.item.room_id]))

    assert response.status_code == 200
    body = response.content.decode()
    assert order.number in body
    assert "'=HYPERLINK" in body
    assert ",=HYPERLINK" not in body and ',"=HYPERLINK' not in body
