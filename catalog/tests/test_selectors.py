"""The product search hosts' tools use: sellable self-operated products only, by text and category, paged."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import Category, Product
from catalog.selectors import product_search

pytestmark = pytest.mark.django_db


def titles(page):
    return [p.title for p in page.object_list]


def test_search_returns_only_sellable_self_operated_products_in_the_feed(make_products):
    make_products(3)
    make_products(1, title="Hidden third party", self_operated=False, sellable=False)
    make_products(1, title="Hidden not enabled", sellable=False)
    make_products(1, title="Hidden gone", sellable=False, in_feed=False)
    page = product_search()
    assert page.paginator.count == 3
    assert not any(t.startswith("Hidden") for t in titles(page))


def test_search_by_words_in_title_brand_or_sku_and_by_category(make_products):
    make_products(2)
    rice = make_products(
        1, title="IH rice cooker 2.0L", brand="Midea", search_text="midea ih rice cooker 2.0l jd-app031"
    )[0]
    kitchen = Category.objects.create(retailer=rice.retailer, code="kitchen", name="Kitchen")
    Product.objects.filter(pk=rice.pk).update(category=kitchen)
    assert titles(product_search(query="MIDEA cooker")) == ["IH rice cooker 2.0L"]
    assert titles(product_search(query="jd-app031")) == ["IH rice cooker 2.0L"]
    assert titles(product_search(query="midea phone")) == []
    assert titles(product_search(category_id=kitchen.pk)) == ["IH rice cooker 2.0L"]
    assert product_search(query="phone", category_id=kitchen.pk).paginator.count == 0


def test_search_is_paged_and_ordered_by_title(make_products):
    make_products(45)
    first = product_search(page=1, page_size=20)
    last = product_search(page=3, page_size=20)
    assert len(first.object_list) == 20 and len(last.object_list) == 5
    assert titles(first) == sorted(titles(first)) and titles(first)[0] == "Phone model 0000"
    assert product_search(page=99, page_size=20).number == 3  # past the end: the last page
    assert len(product_search(page_size=10_000).object_list) == 45  # page size is capped at 100


def test_search_query_count_is_constant_and_images_are_prefetched(make_products):
    make_products(5)
    with CaptureQueriesContext(connection) as few:
        [p.images.all()[0].url for p in product_search().object_list]
    make_products(30)
    with CaptureQueriesContext(connection) as many:
        [p.images.all()[0].url for p in product_search().object_list]
    assert len(few.captured_queries) == len(many.captured_queries) == 3  # count, rows, images
