"""Admin for the sandbox retailer's own tables: the partner's system, clearly labelled as such."""

from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html

from retailer.models import SandboxCategory, SandboxFault, SandboxProduct
from retailer.services import clear_faults, sandbox_churn, take_seq, touch_products


@admin.register(SandboxCategory)
class SandboxCategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "code"]


@admin.register(SandboxProduct)
class SandboxProductAdmin(admin.ModelAdmin):
    list_display = ["picture", "sku", "title", "brand", "category", "price", "stock", "seller_type", "status", "seq"]
    list_filter = ["category", "seller_type", "status"]
    search_fields = ["sku", "title", "brand"]
    list_select_related = ["category"]
    readonly_fields = ["seq", "updated_at"]
    actions = ["churn", "retire", "put_back_on_sale"]
    list_per_page = 50

    class Media:
        css = {"all": ["css/admin.css"]}

    @admin.display(description="")
    def picture(self, obj):
        if not obj.image_urls:
            return ""
        return format_html(
            '<img src="{}" alt="" width="40" height="40" class="lm-thumb">',
            obj.image_urls[0],
        )

    def save_model(self, request, obj, form, change):
        # Every edit moves the product to the end of the feed, as the real retailer's would.
        with transaction.atomic():
            obj.seq = take_seq()
            super().save_model(request, obj, form, change)

    @admin.action(description="Churn the sandbox: change prices and stock (ignores the selection)")
    def churn(self, request, queryset):
        counts = sandbox_churn()
        self.message_user(
            request, "Sandbox changed: " + ", ".join(f"{k} {v}" for k, v in counts.items()), messages.SUCCESS
        )

    @admin.action(description="Retire selected products (they leave the feed)")
    def retire(self, request, queryset):
        with transaction.atomic():
            products = list(queryset.select_for_update().exclude(status=SandboxProduct.Status.RETIRED))
            for p in products:
                p.status = SandboxProduct.Status.RETIRED
            touch_products(products, ["status"])
        self.message_user(request, f"{len(products)} product(s) retired.", messages.SUCCESS)

    @admin.action(description="Put selected products back on sale")
    def put_back_on_sale(self, request, queryset):
        with transaction.atomic():
            products = list(queryset.select_for_update().exclude(status=SandboxProduct.Status.ACTIVE))
            for p in products:
                p.status = SandboxProduct.Status.ACTIVE
            touch_products(products, ["status"])
        self.message_user(request, f"{len(products)} product(s) back on sale.", messages.SUCCESS)


@admin.register(SandboxFault)
class SandboxFaultAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", "endpoint", "status_code", "delay_seconds", "remaining", "created_at"]
    actions = ["clear"]

    @admin.action(description="Clear all pending faults")
    def clear(self, request, queryset):
        self.message_user(request, f"{clear_faults()} fault(s) cleared.", messages.SUCCESS)
