"""The product page a viewer opens from a room or a shared link."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from catalog.models import PriceChange

pytestmark = pytest.mark.django_db


def test_product_page_shows_price_seller_badge_stock_and_pictures(client, make_products):
    product = make_products(1, title="Xiaomi 15 5G, 12GB+256GB Black", list_price=Decimal("4499.00"))[0]
    html = client.get(product.get_absolute_url()).content.decode()
    assert product.get_absolute_url() == f"/products/{product.pk}/"
    assert "Xiaomi 15 5G, 12GB+256GB Black" in html
    assert "¥</span>4,499.00" in html
    assert "Sold and shipped by Jindou Mall" in html
    assert "In stock" in html
    assert product.images.get().url in html
    assert "Available in live rooms" in html


@pytest.mark.parametrize("stock, text", [(0, "Out of stock"), (4, "Only 4 left"), (50, "In stock")])
def test_stock_state(client, make_products, stock, text):
    product = make_products(1, retailer_stock=stock)[0]
    assert text in client.get(product.get_absolute_url()).content.decode()


def test_lowest_price_in_30_days_is_shown(client, make_products):
    product = make_products(1, list_price=Decimal("1999.00"))[0]
    PriceChange.objects.create(
        product=product, old_price=None, new_price=Decimal("1799.00"), changed_at=timezone.now() - timedelta(days=12)
    )
    PriceChange.objects.create(
        product=product, old_price=Decimal("1799.00"), new_price=Decimal("1999.00"), changed_at=timezone.now()
    )
    html = client.get(product.get_absolute_url()).content.decode()
    assert "Lowest price in the last 30 days: <strong>¥1,799.00</strong>" in html


def test_unsellable_products_are_viewable_but_marked(client, make_products):
    third_party = make_products(1, self_operated=False, sellable=False, seller_name="Golden Harbour Trading")[0]
    html = client.get(third_party.get_absolute_url()).content.decode()
    assert "Not available in live rooms" in html
    assert "Sold by Golden Harbour Trading" in html and "Sold and shipped by" not in html
    gone = make_products(1, sellable=False, in_feed=False)[0]
    assert "no longer sells this product" in client.get(gone.get_absolute_url()).content.decode()


def test_unknown_product_is_a_friendly_404(client):
    response = client.get("/products/987654/")
    assert response.status_code == 404
    assert "find that product" in response.content.decode()
    assert client.get("/products/not-a-number/").status_code == 404


def test_product_page_query_count(client, make_products, django_assert_max_num_queries):
    product = make_products(1)[0]
    with django_assert_max_num_queries(6):
        assert client.get(product.get_absolute_url()).status_code == 200
