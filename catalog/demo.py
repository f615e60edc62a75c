"""Demo catalog for `seed_demo`: one sync from the retailer, then put in-stock products on sale."""

from catalog.models import Product, SyncRun
from catalog.services import catalog_sync, products_allow_live_in_stock


def seed_catalog() -> dict[str, int | str]:
    """Sync once; on the first seed (products were created), allow every eligible product in stock."""
    run = catalog_sync(trigger=SyncRun.Trigger.SEED)
    allowed = products_allow_live_in_stock(retailer=run.retailer) if run.created else 0
    return {
        "sync": run.status,
        "created": run.created,
        "updated": run.updated,
        "allowed": allowed,
        "products": Product.objects.count(),
        "sellable": Product.objects.filter(sellable=True).count(),
    }
