from django.shortcuts import render

from catalog import selectors
from catalog.models import Product

LOW_STOCK = 10


def product(request, pk: int):
    """The product page a viewer opens from a room or a shared link."""
    try:
        item = selectors.product_for_page(product_id=pk)
    except Product.DoesNotExist:
        return render(request, "catalog/product_missing.html", status=404)
    images = list(item.images.all())
    lowest = selectors.lowest_price(product=item, days=30)
    return render(
        request,
        "catalog/product_detail.html",
        {
            "product": item,
            "images": images,
            "lowest_30d": lowest,
            "lowest_is_now": lowest >= item.list_price,
            "low_stock": 0 < item.retailer_stock <= LOW_STOCK,
        },
    )
