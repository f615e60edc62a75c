import pytest
from django.core.management import call_command

from catalog.models import Product, SyncRun
from catalog.selectors import product_search

pytestmark = pytest.mark.django_db


def test_seed_demo_fills_the_catalog_from_the_sandbox_once(capsys):
    call_command("seed_demo")
    products = Product.objects.count()
    sellable = Product.objects.filter(sellable=True).count()
    assert products >= 200 and sellable >= 100
    assert not Product.objects.filter(sellable=True, self_operated=False).exists()
    assert not Product.objects.filter(sellable=True, retailer_stock=0).exists()
    assert "208 products" in capsys.readouterr().out

    call_command("seed_demo")
    assert Product.objects.count() == products and Product.objects.filter(sellable=True).count() == sellable
    first, second = SyncRun.objects.order_by("pk")
    assert (first.created, second.created, second.updated) == (products, 0, 0)
    assert product_search(query="xiaomi").paginator.count > 0  # hosts have products to pick from
