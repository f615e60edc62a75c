"""Catalog reads: the product search hosts' tools use, the product page, price history."""

from datetime import timedelta
from decimal import Decimal

from django.core.paginator import Page, Paginator
from django.db.models import Min, QuerySet
from django.utils import timezone

from catalog.models import PriceChange, Product

MAX_PAGE_SIZE = 100
MAX_QUERY_TERMS = 5


def products_sellable() -> QuerySet[Product]:
    """Products that may be put on a live room's shelf: sellable, self-operated, in the feed."""
    return Product.objects.filter(sellable=True, self_operated=True, in_feed=True)


def product_search(*, query: str = "", category_id: int | None = None, page: int = 1, page_size: int = 20) -> Page:
    """Sellable self-operated products matching every word of `query` (title, brand or SKU), by title.

    On PostgreSQL the word match uses the trigram index on search_text and the listing the
    partial (sellable) indexes on title and on category+title.
    """
    qs = products_sellable().select_related("category", "retailer").prefetch_related("images")
    for term in (query or "").lower().split()[:MAX_QUERY_TERMS]:
        qs = qs.filter(search_text__contains=term[:64])
    if category_id is not None:
        qs = qs.filter(category_id=category_id)
    try:
        page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
    except (TypeError, ValueError):
        page_size = 20
    return Paginator(qs.order_by("title", "id"), page_size).get_page(page)


def product_for_page(*, product_id: int) -> Product:
    """The product page's product, with everything the template shows. Raises Product.DoesNotExist."""
    return Product.objects.select_related("retailer", "category").prefetch_related("images").get(pk=product_id)


def lowest_price(*, product: Product, days: int = 30, now=None) -> Decimal:
    """The lowest list price in force at any moment of the last `days` days (today's included)."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    in_window = PriceChange.objects.filter(product=product, changed_at__gte=since).aggregate(low=Min("new_price"))[
        "low"
    ]
    before = (
        PriceChange.objects.filter(product=product, changed_at__lt=since)
        .order_by("-changed_at")
        .values_list("new_price", flat=True)
        .first()
    )
    candidates = [p for p in (in_window, before, product.list_price) if p is not None]
    return min(candidates)
