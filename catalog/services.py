"""Catalog writes: the feed sync and staff's "sell in live rooms" switch.

`catalog_sync()` is the one sync: the `sync_catalog` command, the Celery beat task and
the admin action all call it.

- It pulls the retailer's feed page by page from the saved cursor (or from the start for
  a full sync), upserts products idempotently, records price changes, and withdraws
  (never deletes) products that were retired or stopped being self-operated. A full sync
  also withdraws products it did not see at all.
- A bad entry is rejected and reported in the run; the run goes on.
- Only one sync runs per retailer at a time: a lease on the Retailer row, taken with one
  conditional UPDATE (atomic on PostgreSQL and SQLite alike), renewed every page and
  expiring if the worker dies. A sync that finds the lease taken records a "skipped" run.
  Each page is written in its own transaction together with the cursor, so a run that
  dies half-way resumes where it stopped and repeats nothing with effect.
- Retailer calls happen outside transactions; no row lock is held while waiting on them.
"""

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from catalog.models import Category, PriceChange, Product, ProductImage, Retailer, SyncRun
from catalog.retailer_client import RetailerClient, RetailerError, get_retailer_client

logger = logging.getLogger(__name__)

PAGE_SIZE = 200
LEASE = timedelta(minutes=10)
MAX_PAGES = 10_000
MAX_ERRORS_KEPT = 100
MAX_PRICE = Decimal("9999999999.99")
MAX_IMAGES = 12

REASON_RETIRED = "Retired by the retailer"
REASON_THIRD_PARTY = "Now sold by a third-party seller"
REASON_GONE = "No longer in the retailer's feed"
REASON_STAFF = "Withdrawn by staff"

RETAILER_FIELDS = [
    "category", "title", "brand", "description", "list_price", "currency", "self_operated",
    "seller_name", "retailer_stock", "feed_updated_at", "search_text",
]  # fmt: skip


# What a run's record holds after each committed page (reloaded when a later page fails).
COUNTERS = [
    "pages",
    "created",
    "updated",
    "unchanged",
    "withdrawn",
    "rejected",
    "price_changes",
    "errors",
    "cursor_to",
]


class EntryRejected(Exception):
    pass


class LeaseLost(Exception):
    pass


@dataclass
class Entry:
    """One feed entry that passed validation."""

    sku: str
    retired: bool
    title: str = ""
    brand: str = ""
    description: str = ""
    category_code: str = ""
    price: Decimal = Decimal(0)
    currency: str = "CNY"
    self_operated: bool = False
    seller_name: str = ""
    stock: int = 0
    images: tuple[str, ...] = ()
    updated_at: datetime | None = None


def _text(raw: dict, name: str, max_length: int, *, required: bool = True) -> str:
    value = raw.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise EntryRejected(f"missing or non-text field '{name}'")
    value = value.strip()
    if required and not value:
        raise EntryRejected(f"empty field '{name}'")
    if len(value) > max_length:
        raise EntryRejected(f"field '{name}' is longer than {max_length} characters")
    return value


def parse_entry(raw: Any, categories: dict[str, Category]) -> Entry:
    """Check one feed entry; raise EntryRejected with a reason staff can act on."""
    if not isinstance(raw, dict):
        raise EntryRejected("entry is not an object")
    sku = _text(raw, "sku", 64)
    status = raw.get("status", "active")
    if status == "retired":
        return Entry(sku=sku, retired=True)
    if status != "active":
        raise EntryRejected(f"unknown status {str(status)[:20]!r}")
    category_code = _text(raw, "category", 64)
    if category_code not in categories:
        raise EntryRejected(f"unknown category {category_code!r}")
    raw_price = raw.get("price")
    if isinstance(raw_price, bool) or not isinstance(raw_price, (str, int)):
        raise EntryRejected("missing or malformed field 'price'")
    try:
        price = Decimal(str(raw_price))
    except InvalidOperation:
        raise EntryRejected(f"price {str(raw_price)[:20]!r} is not a number")
    if not price.is_finite():
        raise EntryRejected("price is not a number")
    if price < 0:
        raise EntryRejected(f"negative price {price}")
    if price == 0 or price > MAX_PRICE or price != price.quantize(Decimal("0.01")):
        raise EntryRejected(f"price {price} is out of range or has more than 2 decimals")
    currency = raw.get("currency")
    if currency not in Product.Currency.values:
        raise EntryRejected(f"unsupported currency {str(currency)[:8]!r}")
    seller = raw.get("seller")
    if not isinstance(seller, dict) or seller.get("type") not in ("self_operated", "third_party"):
        raise EntryRejected("missing or malformed field 'seller'")
    stock = raw.get("stock")
    if isinstance(stock, bool) or not isinstance(stock, int) or not 0 <= stock <= 2**31 - 1:
        raise EntryRejected("missing or malformed field 'stock' (a whole number, 0 or more)")
    images = raw.get("images", [])
    if not isinstance(images, list) or not all(isinstance(u, str) and 0 < len(u) <= 500 for u in images):
        raise EntryRejected("malformed field 'images' (a list of URLs)")
    if not all(u.startswith(("/", "https://", "http://")) for u in images):
        raise EntryRejected("image URLs must be absolute")
    updated_at = parse_datetime(raw["updated_at"]) if isinstance(raw.get("updated_at"), str) else None
    return Entry(
        sku=sku,
        retired=False,
        title=_text(raw, "title", 200),
        brand=_text(raw, "brand", 80, required=False),
        description=_text(raw, "description", 5000, required=False),
        category_code=category_code,
        price=price,
        currency=currency,
        self_operated=seller["type"] == "self_operated",
        seller_name=str(seller.get("name") or "")[:120],
        stock=stock,
        images=tuple(images[:MAX_IMAGES]),
        updated_at=updated_at if updated_at and timezone.is_aware(updated_at) else None,
    )


def _search_text(*, brand: str, title: str, sku: str) -> str:
    return f"{brand} {title} {sku}".lower()


def _withdraw(product: Product, *, reason: str, now: datetime, gone: bool = False) -> list[str]:
    product.sellable = False
    product.withdrawn_reason = reason
    product.withdrawn_at = now
    fields = ["sellable", "withdrawn_reason", "withdrawn_at"]
    if gone:
        product.in_feed = False
        fields.append("in_feed")
    return fields


class _SyncPage:
    """Applies one page of the feed inside one transaction."""

    def __init__(self, *, retailer: Retailer, run: SyncRun, categories: dict[str, Category], now: datetime):
        self.retailer = retailer
        self.run = run
        self.categories = categories
        self.now = now

    def reject(self, raw: Any, reason: str) -> str:
        self.run.rejected += 1
        sku = raw.get("sku") if isinstance(raw, dict) and isinstance(raw.get("sku"), str) else ""
        if len(self.run.errors) < MAX_ERRORS_KEPT:
            self.run.errors.append({"sku": sku[:64], "error": reason})
        return sku

    def apply(self, items: list) -> set[str]:
        """Apply the page; return every SKU it mentioned (a rejected entry still counts as seen)."""
        entries: dict[str, Entry] = {}
        seen: set[str] = set()
        for raw in items:
            try:
                entry = parse_entry(raw, self.categories)
            except EntryRejected as exc:
                seen.add(self.reject(raw, str(exc)))
                continue
            entries[entry.sku] = entry  # a later entry for the same SKU wins
        existing = {
            p.sku: p
            for p in Product.objects.select_for_update()
            .filter(retailer=self.retailer, sku__in=list(entries))
            .prefetch_related("images")
            .order_by("pk")
        }
        new = []
        for entry in entries.values():
            product = existing.get(entry.sku)
            if product is None:
                if not entry.retired:
                    new.append(entry)
            else:
                self.update(product, entry)
        self.create(new)
        return seen | set(entries)

    def create(self, entries: list[Entry]) -> None:
        if not entries:
            return
        products = Product.objects.bulk_create(
            Product(
                retailer=self.retailer,
                sku=e.sku,
                category=self.categories[e.category_code],
                title=e.title,
                brand=e.brand,
                description=e.description,
                list_price=e.price,
                currency=e.currency,
                self_operated=e.self_operated,
                seller_name=e.seller_name,
                retailer_stock=e.stock,
                feed_updated_at=e.updated_at,
                search_text=_search_text(brand=e.brand, title=e.title, sku=e.sku),
                in_feed=True,
                sellable=False,
            )
            for e in entries
        )
        if any(p.pk is None for p in products):  # a database that cannot return ids from a bulk insert
            by_sku = dict(
                Product.objects.filter(retailer=self.retailer, sku__in=[e.sku for e in entries]).values_list(
                    "sku", "pk"
                )
            )
            for p in products:
                p.pk = by_sku[p.sku]
        ProductImage.objects.bulk_create(
            ProductImage(product=p, url=url, position=i)
            for p, e in zip(products, entries, strict=True)
            for i, url in enumerate(e.images)
        )
        PriceChange.objects.bulk_create(
            PriceChange(product=p, old_price=None, new_price=p.list_price, changed_at=self.now, sync_run=self.run)
            for p in products
        )
        self.run.created += len(products)

    def update(self, product: Product, e: Entry) -> None:
        fields: list[str] = []
        if e.retired:
            if product.in_feed:
                fields = _withdraw(product, reason=REASON_RETIRED, now=self.now, gone=True)
                product.save(update_fields=[*fields, "updated_at"])
                self.run.withdrawn += 1
            else:
                self.run.unchanged += 1
            return
        was_eligible = product.in_feed and product.self_operated
        wanted = {
            "category": self.categories[e.category_code],
            "title": e.title,
            "brand": e.brand,
            "description": e.description,
            "list_price": e.price,
            "currency": e.currency,
            "self_operated": e.self_operated,
            "seller_name": e.seller_name,
            "retailer_stock": e.stock,
            "search_text": _search_text(brand=e.brand, title=e.title, sku=e.sku),
        }
        old_price = product.list_price
        for name, value in wanted.items():
            if getattr(product, name) != value:
                setattr(product, name, value)
                fields.append(name)
        if not product.in_feed:
            product.in_feed = True  # back in the feed; staff decide again whether to sell it
            product.withdrawn_reason = ""
            fields += ["in_feed", "withdrawn_reason"]
        if was_eligible and not e.self_operated:
            fields += _withdraw(product, reason=REASON_THIRD_PARTY, now=self.now)
            self.run.withdrawn += 1
        if [img.url for img in product.images.all()] != list(e.images):
            product.images.all().delete()
            ProductImage.objects.bulk_create(
                ProductImage(product=product, url=u, position=i) for i, u in enumerate(e.images)
            )
            fields.append("images")
        if not fields:
            self.run.unchanged += 1
            return
        if e.updated_at:
            product.feed_updated_at = e.updated_at
            fields.append("feed_updated_at")
        product.save(update_fields=[f for f in dict.fromkeys(fields) if f != "images"] + ["updated_at"])
        if "list_price" in fields:
            PriceChange.objects.create(
                product=product, old_price=old_price, new_price=e.price, changed_at=self.now, sync_run=self.run
            )
            self.run.price_changes += 1
        self.run.updated += 1


def _page_shape(page: Any, *, cursor: str) -> tuple[list, str, bool]:
    if not isinstance(page, dict):
        raise RetailerError("feed page is not an object", code="bad_answer")
    items, next_cursor, has_more = page.get("items"), page.get("next_cursor"), page.get("has_more")
    if not isinstance(items, list) or not isinstance(next_cursor, str) or not isinstance(has_more, bool):
        raise RetailerError("feed page lacks items / next_cursor / has_more", code="bad_answer")
    if has_more and (not items or next_cursor == cursor):
        raise RetailerError("feed says it has more but the cursor does not move", code="bad_answer")
    return items, next_cursor, has_more


def _sync_categories(retailer: Retailer, answer: Any) -> dict[str, Category]:
    if not isinstance(answer, dict) or not isinstance(answer.get("categories"), list):
        raise RetailerError("categories answer lacks 'categories'", code="bad_answer")
    info = answer.get("retailer")
    if isinstance(info, dict) and isinstance(info.get("name"), str) and info["name"] and info["name"] != retailer.name:
        retailer.name = info["name"][:120]
        retailer.save(update_fields=["name"])
    existing = {c.code: c for c in Category.objects.filter(retailer=retailer)}
    for raw in answer["categories"]:
        if not isinstance(raw, dict) or not isinstance(raw.get("code"), str) or not isinstance(raw.get("name"), str):
            continue
        code, name = raw["code"][:64], raw["name"][:120]
        category = existing.get(code)
        if category is None:
            existing[code] = Category.objects.create(retailer=retailer, code=code, name=name)
        elif category.name != name:
            category.name = name
            category.save(update_fields=["name"])
    return existing


def _take_lease(retailer: Retailer, holder: str) -> bool:
    now = timezone.now()
    free = Q(sync_lease_until__isnull=True) | Q(sync_lease_until__lt=now)
    return bool(
        Retailer.objects.filter(free, pk=retailer.pk).update(sync_lease_until=now + LEASE, sync_lease_holder=holder)
    )


def _renew_lease(retailer: Retailer, holder: str) -> None:
    held = Retailer.objects.filter(pk=retailer.pk, sync_lease_holder=holder, sync_lease_until__gte=timezone.now())
    if not held.update(sync_lease_until=timezone.now() + LEASE):
        raise LeaseLost("the sync lease expired and was taken by another sync")


def _release_lease(retailer: Retailer, holder: str) -> None:
    Retailer.objects.filter(pk=retailer.pk, sync_lease_holder=holder).update(
        sync_lease_until=None, sync_lease_holder=""
    )


def _withdraw_unseen(retailer: Retailer, seen: set[str], run: SyncRun, now: datetime) -> None:
    in_feed = set(Product.objects.filter(retailer=retailer, in_feed=True).values_list("sku", flat=True))
    gone = sorted(in_feed - seen)
    for start in range(0, len(gone), 500):
        chunk = gone[start : start + 500]
        with transaction.atomic():
            run.withdrawn += Product.objects.filter(retailer=retailer, in_feed=True, sku__in=chunk).update(
                in_feed=False, sellable=False, withdrawn_reason=REASON_GONE, withdrawn_at=now, updated_at=now
            )


def get_retailer() -> Retailer:
    retailer, _ = Retailer.objects.get_or_create(
        code=settings.RETAILER_CODE, defaults={"name": settings.RETAILER_CODE.upper()}
    )
    return retailer


def catalog_sync(
    *,
    trigger: str,
    full: bool = False,
    client: RetailerClient | None = None,
    page_size: int = PAGE_SIZE,
) -> SyncRun:
    """Bring our catalog up to date with the retailer's feed. Returns the run's record."""
    retailer = get_retailer()
    holder = uuid.uuid4().hex
    if not _take_lease(retailer, holder):
        return SyncRun.objects.create(
            retailer=retailer,
            trigger=trigger,
            full=full,
            status=SyncRun.Status.SKIPPED,
            finished_at=timezone.now(),
            message="Another sync of this retailer was running; nothing was done.",
        )
    started = time.monotonic()
    retailer.refresh_from_db()
    cursor = "" if full else retailer.feed_cursor
    full = full or not cursor  # reading from the very start is a full pass
    run = SyncRun.objects.create(retailer=retailer, trigger=trigger, full=full, cursor_from=cursor)
    try:
        client = client or get_retailer_client()
        categories = _sync_categories(retailer, client.catalog_categories())
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            _renew_lease(retailer, holder)
            items, next_cursor, has_more = _page_shape(
                client.catalog_feed(cursor=cursor, limit=page_size), cursor=cursor
            )
            now = timezone.now()
            with transaction.atomic():
                seen |= _SyncPage(retailer=retailer, run=run, categories=categories, now=now).apply(items)
                run.pages += 1
                run.cursor_to = next_cursor
                run.save()
                moved = Retailer.objects.filter(pk=retailer.pk, sync_lease_holder=holder).update(
                    feed_cursor=next_cursor
                )
                if not moved:
                    raise LeaseLost("the sync lease was taken by another sync")
            cursor = next_cursor
            if not has_more:
                break
        if full:
            _withdraw_unseen(retailer, seen, run, timezone.now())
        run.status = SyncRun.Status.SUCCEEDED
        Retailer.objects.filter(pk=retailer.pk).update(last_synced_at=timezone.now())
    except (RetailerError, LeaseLost) as exc:
        run.refresh_from_db(fields=COUNTERS)
        run.status = SyncRun.Status.FAILED
        run.message = str(exc)[:500]
        logger.warning("catalog sync %s failed: %s", run.pk, exc)
    except Exception as exc:
        run.refresh_from_db(fields=COUNTERS)
        run.status = SyncRun.Status.FAILED
        run.message = f"Internal error: {type(exc).__name__}: {exc}"[:500]
        logger.exception("catalog sync %s crashed", run.pk)
    finally:
        _release_lease(retailer, holder)
    run.finished_at = timezone.now()
    run.save()
    logger.info("catalog sync %s %s in %.2f s", run.pk, run.status, time.monotonic() - started)
    return run


# --- staff's switch ---------------------------------------------------------------------


def products_allow_live(*, product_ids: list[int]) -> tuple[int, int]:
    """Let these products be sold in live rooms. Returns (allowed, refused).

    Refused: third-party products and products no longer in the feed. The condition is
    part of the UPDATE, so a sync that changes a product at the same moment cannot slip
    an ineligible product through (the database constraint backs this up).
    """
    ids = list(dict.fromkeys(product_ids))
    eligible = Product.objects.filter(pk__in=ids, self_operated=True, in_feed=True)
    allowed = eligible.filter(sellable=False).update(
        sellable=True, withdrawn_reason="", withdrawn_at=None, updated_at=timezone.now()
    )
    refused = len(ids) - eligible.count()
    return allowed, refused


def products_allow_live_in_stock(*, retailer: Retailer) -> int:
    """Allow every eligible product in stock (the demo seed uses this)."""
    qs = Product.objects.filter(
        retailer=retailer, self_operated=True, in_feed=True, retailer_stock__gt=0, sellable=False
    )
    return qs.update(sellable=True, withdrawn_reason="", withdrawn_at=None, updated_at=timezone.now())


def products_withdraw(*, product_ids: list[int], reason: str = REASON_STAFF) -> int:
    """Stop selling these products in live rooms. Returns how many were sellable."""
    now = timezone.now()
    return Product.objects.filter(pk__in=list(product_ids), sellable=True).update(
        sellable=False, withdrawn_reason=reason[:200], withdrawn_at=now, updated_at=now
    )
