"""What the sandbox retailer does on its own: keep its feed sequence, change over time, fail on demand."""

import random
from decimal import Decimal

from django.db import transaction

from retailer.models import SandboxFault, SandboxProduct, SandboxSequence

FEED_SEQUENCE = "feed"


def take_seq(count: int = 1) -> int:
    """Reserve `count` consecutive feed positions and return the first.

    Must run inside the transaction that writes the products: the sequence row stays
    locked until that transaction commits, so changes become visible in feed order and a
    partner reading the feed never skips a change that commits late.
    """
    connection = transaction.get_connection()
    assert connection.in_atomic_block, "take_seq() must run inside transaction.atomic()"
    # One statement for every order the sandbox accepts: bump and read back (RETURNING works
    # on PostgreSQL and SQLite >= 3.35). The table is SandboxSequence's.
    with connection.cursor() as cursor:
        cursor.execute(
            'UPDATE "retailer_sandboxsequence" SET "value" = "value" + %s WHERE "name" = %s RETURNING "value"',
            [count, FEED_SEQUENCE],
        )
        row = cursor.fetchone()
    if row is None:  # the very first change: the counter row does not exist yet
        SandboxSequence.objects.get_or_create(name=FEED_SEQUENCE)
        return take_seq(count)
    return row[0] - count + 1


def touch_products(products: list[SandboxProduct], fields: list[str]) -> None:
    """Save changed products with fresh feed positions (so the feed shows them again)."""
    if not products:
        return
    first = take_seq(len(products))
    for i, product in enumerate(sorted(products, key=lambda p: p.pk)):
        product.seq = first + i
        product.save(update_fields=[*fields, "seq", "updated_at"])


def sandbox_churn(
    *,
    seed: int | None = None,
    price_changes: int = 20,
    stock_changes: int = 40,
    retirements: int = 2,
    flips_to_third_party: int = 1,
    revivals: int = 1,
) -> dict[str, int]:
    """Move the sandbox along in time: prices and stock change, a few products leave or change seller."""
    rng = random.Random(seed)
    counts = {"price_changes": 0, "stock_changes": 0, "retired": 0, "flipped": 0, "revived": 0}
    with transaction.atomic():
        active = list(
            SandboxProduct.objects.select_for_update().filter(status=SandboxProduct.Status.ACTIVE).order_by("pk")
        )
        changed: dict[int, SandboxProduct] = {}
        fields = {"price", "stock", "status", "seller_type", "seller_name"}
        for product in rng.sample(active, min(price_changes, len(active))):
            factor = Decimal(rng.choice(["0.85", "0.9", "0.95", "1.05", "1.1"]))
            new_price = max((product.price * factor).quantize(Decimal("1")) - Decimal("0.01"), Decimal("0.99"))
            if new_price != product.price:
                product.price = new_price
                changed[product.pk] = product
                counts["price_changes"] += 1
        for product in rng.sample(active, min(stock_changes, len(active))):
            product.stock = rng.choice([0, 0, 2, 5, 18, 40, 150, 500])
            changed[product.pk] = product
            counts["stock_changes"] += 1
        self_operated = [p for p in active if p.seller_type == SandboxProduct.Seller.SELF_OPERATED]
        for product in rng.sample(self_operated, min(retirements + flips_to_third_party, len(self_operated))):
            if counts["retired"] < retirements:
                product.status = SandboxProduct.Status.RETIRED
                counts["retired"] += 1
            else:
                product.seller_type = SandboxProduct.Seller.THIRD_PARTY
                product.seller_name = f"{product.brand} Authorised Store"
                counts["flipped"] += 1
            changed[product.pk] = product
        retired = list(
            SandboxProduct.objects.select_for_update().filter(status=SandboxProduct.Status.RETIRED).order_by("pk")
        )
        for product in rng.sample(retired, min(revivals, len(retired))):
            if product.pk in changed:
                continue
            product.status = SandboxProduct.Status.ACTIVE
            product.stock = rng.choice([20, 80])
            changed[product.pk] = product
            counts["revived"] += 1
        touch_products(list(changed.values()), sorted(fields))
    return counts


def set_fault(
    *,
    kind: str,
    times: int = 1,
    status_code: int = 503,
    delay_seconds: float = 0,
    endpoint: str = "",
    probability: float = 1.0,
) -> SandboxFault:
    """Make the next `times` API calls fail (kind "error") or answer after `delay_seconds` ("slow").

    Fulfilment faults: "timeout" (the work is done, the answer lost), "dup_callbacks",
    "ooo_callbacks", "reject_returns". `probability` < 1 makes it an error rate.
    """
    return SandboxFault.objects.create(
        kind=kind, status_code=status_code, delay_seconds=delay_seconds, remaining=times, endpoint=endpoint,
        probability=probability,
    )  # fmt: skip


def product_put(*, sku: str, stock: int, title: str = "", price: Decimal = Decimal("99.00"),
                self_operated: bool = True) -> SandboxProduct:  # fmt: skip
    """Create or restock one sandbox product (demo data and partner tests)."""
    from retailer.models import SandboxCategory

    category, _ = SandboxCategory.objects.get_or_create(code="misc", defaults={"name": "Miscellaneous"})
    seller = SandboxProduct.Seller.SELF_OPERATED if self_operated else SandboxProduct.Seller.THIRD_PARTY
    with transaction.atomic():
        product = SandboxProduct.objects.select_for_update().filter(sku=sku).first()
        if product is None:
            product = SandboxProduct(sku=sku, category=category, title=title or sku, brand="Sandbox", price=price,
                                     seller_name="Jindou Mall" if self_operated else "Partner store")  # fmt: skip
        product.stock = stock
        product.seller_type = seller
        product.status = SandboxProduct.Status.ACTIVE
        product.seq = take_seq()
        product.save()
    return product


def product_stock(*, sku: str) -> int | None:
    return SandboxProduct.objects.filter(sku=sku).values_list("stock", flat=True).first()


def sandbox_orders(*, key: str | None = None) -> list[dict]:
    """What the retailer holds (for partner tests and the bench): one dict per order."""
    from retailer.models import SandboxOrder

    rows = SandboxOrder.objects.all() if key is None else SandboxOrder.objects.filter(partner_key=key)
    return list(rows.values("partner_key", "reference", "status", "times_submitted", "lines", "carrier", "waybill"))


def clear_faults() -> int:
    return SandboxFault.objects.filter(remaining__gt=0).update(remaining=0)
