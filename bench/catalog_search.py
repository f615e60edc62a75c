"""Product search (catalog.selectors.product_search) on 10,000 products, PostgreSQL.

Creates its own throwaway database (bench_catalog_<pid>), migrates it, fills it, times the
hosts' product-picker queries and prints their plans, then drops it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/livemart .venv/bin/python bench/catalog_search.py
"""

import os
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("QUIET_EMBEDDED", "1")

import django

django.setup()

from django.db import connection  # noqa: E402

N = 10_000
REPEAT = 30


def fill():
    from catalog.models import Category, Product, ProductImage, Retailer

    rng = random.Random(1)
    retailer = Retailer.objects.create(code="jdm", name="Jindou Mall")
    cats = [Category.objects.create(retailer=retailer, code=c, name=c.title()) for c in
            ["phones", "computers", "appliances", "groceries", "beauty", "home"]]  # fmt: skip
    brands = ["Xiaomi", "HUAWEI", "Midea", "Haier", "Proya", "Three Squirrels", "Lenovo", "Supor", "Gree", "OPPO"]
    words = ["pro", "max", "lite", "rice cooker", "air fryer", "serum", "phone", "laptop", "nuts", "kettle", "lamp"]
    products = []
    for i in range(N):
        brand = rng.choice(brands)
        title = f"{brand} {rng.choice(words)} {rng.choice(words)} model {i:05d}"
        self_op = rng.random() < 0.8
        products.append(Product(
            retailer=retailer, sku=f"JD-{i:06d}", category=rng.choice(cats), title=title, brand=brand,
            list_price=Decimal(rng.randint(9, 9999)), self_operated=self_op, retailer_stock=rng.randint(0, 500),
            sellable=self_op and rng.random() < 0.85, search_text=f"{brand} {title} jd-{i:06d}".lower(),
        ))  # fmt: skip
    Product.objects.bulk_create(products, batch_size=2000)
    ProductImage.objects.bulk_create(
        (ProductImage(product=p, url=f"/media/x/{p.sku}.jpg") for p in products), batch_size=2000
    )
    with connection.cursor() as cur:
        cur.execute("ANALYZE")
    return cats


def timed(label, fn):
    samples = []
    for _ in range(REPEAT):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    print(
        f"  {label:<44} median {statistics.median(samples):6.2f} ms   p90 {sorted(samples)[int(REPEAT * 0.9)]:6.2f} ms"
    )


def plan(qs):
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cur:
        cur.execute("EXPLAIN " + sql, params)
        lines = [row[0] for row in cur.fetchall()]
    return " | ".join(line.strip() for line in lines if "Scan" in line or "Index" in line)[:200]


def main():
    assert connection.vendor == "postgresql", "set DATABASE_URL to a PostgreSQL server"
    connection.settings_dict["TEST"]["NAME"] = f"bench_catalog_{os.getpid()}"
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        from catalog.selectors import product_search

        cats = fill()
        print(f"catalog.selectors.product_search on {N} products ({REPEAT} runs each; page of 20 with pictures)")

        def run(**kw):
            return lambda: list(product_search(**kw).object_list)

        timed("first page, no filter", run())
        timed("page 200, no filter", run(page=200))
        timed("category", run(category_id=cats[2].pk))
        timed("text: 'rice cooker' (common words)", run(query="rice cooker"))
        timed("text: 'xiaomi pro' + category", run(query="xiaomi pro", category_id=cats[0].pk))
        timed("text: 'jd-004242' (one SKU)", run(query="jd-004242"))
        print("plans:")
        for label, kw in [
            ("no filter", {}),
            ("category", {"category_id": cats[2].pk}),
            ("one SKU", {"query": "jd-004242"}),
        ]:
            print(f"  {label:<10} {plan(product_search(**kw).object_list)}")
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
