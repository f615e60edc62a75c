import uuid
from decimal import Decimal

import pytest

from catalog.models import Category, Product, ProductImage, Retailer
from retailer.seed import seed_sandbox_catalog


@pytest.fixture
def sandbox(db):
    """The sandbox retailer with its seeded catalog (the other company's system)."""
    return seed_sandbox_catalog()


class FakeRetailer:
    """A retailer client that serves hand-written pages: for entries the sandbox would never send."""

    backend = "fake"

    def __init__(self, pages: list[list[dict]], categories=("phones", "home")):
        self.pages = pages
        self.categories = categories
        self.token = uuid.uuid4().hex

    def catalog_categories(self):
        return {
            "retailer": {"code": "jdm", "name": "Jindou Mall"},
            "categories": [{"code": c, "name": c.title()} for c in self.categories],
        }

    def catalog_feed(self, *, cursor, limit=100):
        # Cursors are "<this fake's token>:<page>"; another fake's cursor reads from the start.
        mine, _, page = (cursor or "").partition(":")
        index = int(page) if mine == self.token else 0
        items = self.pages[index] if index < len(self.pages) else []
        return {"items": items, "next_cursor": f"{self.token}:{index + 1}", "has_more": index + 1 < len(self.pages)}


def entry(sku: str, **overrides) -> dict:
    item = {
        "sku": sku,
        "status": "active",
        "title": f"Product {sku}",
        "brand": "Acme",
        "description": "",
        "category": "phones",
        "price": "99.00",
        "currency": "CNY",
        "seller": {"type": "self_operated", "name": "Jindou Mall Self-operated"},
        "stock": 10,
        "images": [f"/media/retailer/{sku.lower()}-1.jpg"],
    }
    item.update(overrides)
    return item


@pytest.fixture
def make_products(db):
    """make_products(n, **fields): n products with a picture each, in one category."""

    def make(n: int, **fields) -> list[Product]:
        retailer, _ = Retailer.objects.get_or_create(code="jdm", defaults={"name": "Jindou Mall"})
        category, _ = Category.objects.get_or_create(retailer=retailer, code="phones", defaults={"name": "Phones"})
        start = Product.objects.count()
        products = []
        for i in range(start, start + n):
            values = {
                "title": f"Phone model {i:04d}",
                "brand": "Xiaomi",
                "list_price": Decimal("1999.00"),
                "self_operated": True,
                "retailer_stock": 20,
                "sellable": True,
                "search_text": f"xiaomi phone model {i:04d} sku-{i:04d}",
            }
            values.update(fields)
            product = Product.objects.create(retailer=retailer, category=category, sku=f"SKU-{i:04d}", **values)
            ProductImage.objects.create(product=product, url=f"/media/retailer/x-{i}.jpg")
            products.append(product)
        return products

    return make
