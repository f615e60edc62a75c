"""The product page and the catalog admin in real Chromium, at phone and desktop width."""

import pytest

from accounts.models import User
from catalog.models import Product, Retailer
from catalog.services import catalog_sync, products_allow_live_in_stock
from retailer.seed import seed_sandbox_catalog
from retailer.services import sandbox_churn

pytestmark = pytest.mark.browser


@pytest.fixture
def catalog(live_url):
    seed_sandbox_catalog()
    catalog_sync(trigger="seed")
    products_allow_live_in_stock(retailer=Retailer.objects.get())
    sandbox_churn(seed=2)
    catalog_sync(trigger="beat")
    return live_url


def test_viewer_opens_a_product_page_and_flips_through_pictures(catalog, page, screenshot):
    phone = (
        Product.objects.filter(sellable=True, category__code="phones", retailer_stock__gt=10).order_by("title").first()
    )
    page.goto(catalog + phone.get_absolute_url())
    assert page.get_by_role("heading", level=1).inner_text() == phone.title
    assert page.get_by_text(f"Sold and shipped by {phone.retailer.name}").is_visible()
    assert page.get_by_text("In stock", exact=True).is_visible()
    main = page.locator("#product-main-img")
    assert main.evaluate("img => img.complete && img.naturalWidth") == 480  # the picture really loads
    first_src = main.get_attribute("src")
    page.get_by_role("button", name="Show picture 2 of 3").click()
    assert main.get_attribute("src") != first_src and main.get_attribute("src").endswith("-2.jpg")
    page.get_by_role("button", name="Show picture 1 of 3").click()
    page.evaluate("window.scrollTo(0, 0)")
    screenshot("product-page")

    third_party = (
        Product.objects.filter(self_operated=False, retailer_stock=0).first()
        or Product.objects.filter(self_operated=False).first()
    )
    page.goto(catalog + third_party.get_absolute_url())
    assert page.get_by_text("Not available in live rooms.").is_visible()
    screenshot("product-page-third-party")

    page.goto(catalog + "/products/999999/")
    assert page.get_by_role("heading", name="We can't find that product").is_visible()
    screenshot("product-404")


def test_staff_manage_the_catalog_in_admin(catalog, page, screenshot):
    User.objects.create_superuser("ops", "ops@example.com", "merch-team-2026")
    page.goto(catalog + "/admin/login/?next=/admin/catalog/product/")
    page.get_by_label("Username").fill("ops")
    page.get_by_label("Password").fill("merch-team-2026")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/catalog/product/")
    assert page.locator("#result_list img.cat-thumb").count() == 50
    screenshot("admin-product-list", widths=((1280, 900),))

    page.get_by_role("button", name="⟳ Sync catalog now").click()
    assert page.locator(".messagelist").inner_text().startswith("Sync #")
    page.goto(catalog + "/admin/catalog/product/?q=xiaomi&self_operated__exact=1")
    assert page.locator("#result_list tbody tr").count() > 3
    screenshot("admin-product-search", widths=((1280, 900),))

    page.goto(catalog + "/admin/catalog/syncrun/")
    assert page.locator("#result_list tbody tr").count() == 3
    screenshot("admin-sync-runs", widths=((1280, 700),))

    product = Product.objects.filter(sellable=True, category__code="phones").first()
    page.goto(catalog + f"/admin/catalog/product/{product.pk}/change/")
    assert page.get_by_text("From the retailer's feed (read-only)").is_visible()
    screenshot("admin-product-change", widths=((1280, 900),))
