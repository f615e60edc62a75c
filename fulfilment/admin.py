"""Staff's view of the hand-off: the outbox with its dead letters, attempts, callbacks,
after-sales, the commission ledger and per-room money reports."""

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count
from django.utils.html import format_html

from fulfilment import selectors, services
from fulfilment.models import (
    AfterSalesRequest,
    CommissionEntry,
    DeliveryAttempt,
    Handoff,
    OutboxMessage,
    RetailerCallback,
    RoomMoney,
)


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    fields = ("number", "started_at", "duration_ms", "outcome", "error", "worker")
    readonly_fields = fields
    ordering = ("-started_at",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    list_display = ("key", "state", "attempts", "short_error", "updated_at")
    list_filter = ("status", "kind")
    search_fields = ("key", "order__number")
    readonly_fields = (
        "kind",
        "order",
        "key",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "lease_until",
        "last_error",
        "result",
        "created_at",
        "updated_at",
        "done_at",
    )
    exclude = ("claim_token",)
    list_select_related = ("order",)
    inlines = [DeliveryAttemptInline]
    actions = ["retry_now"]
    list_per_page = 50

    class Media:
        css = {"all": ["css/admin.css"]}

    def has_add_permission(self, request):
        return False

    @admin.display(description="status", ordering="status")
    def state(self, obj):
        return format_html('<strong class="lm-state lm-state-{}">{}</strong>', obj.status, obj.get_status_display())

    @admin.display(description="last error")
    def short_error(self, obj):
        return (obj.last_error[:70] + "…") if len(obj.last_error) > 70 else obj.last_error

    @admin.action(description="Retry now (dead-lettered messages)")
    def retry_now(self, request, queryset):
        retried = sum(
            services.outbox_retry(message_id=pk, by=request.user)
            for pk in queryset.filter(status="dead").values_list("pk", flat=True)
        )
        skipped = queryset.count() - retried
        self.message_user(
            request,
            f"{retried} message(s) queued again."
            + (f" {skipped} skipped (only dead-lettered messages are retried)." if skipped else ""),
            messages.SUCCESS if retried else messages.WARNING,
        )


@admin.register(RetailerCallback)
class RetailerCallbackAdmin(admin.ModelAdmin):
    list_display = ("received_at", "event", "order_number", "outcome", "detail", "delivery_id")
    list_filter = ("event", "outcome")
    search_fields = ("order_number", "delivery_id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Handoff)
class HandoffAdmin(admin.ModelAdmin):
    list_display = ("order", "retailer_order_id", "carrier", "waybill", "accepted_at", "delivered_at")
    search_fields = ("order__number", "retailer_order_id", "waybill")
    list_select_related = ("order",)
    readonly_fields = (
        "order",
        "retailer_order_id",
        "carrier",
        "waybill",
        "accepted_at",
        "delivered_at",
        "return_window_ends",
    )

    def has_add_permission(self, request):
        return False


@admin.register(AfterSalesRequest)
class AfterSalesRequestAdmin(admin.ModelAdmin):
    list_display = ("order", "kind", "status", "amount", "reason", "created_at", "decided_at", "refunded_at")
    list_filter = ("kind", "status")
    search_fields = ("order__number", "key")
    list_select_related = ("order",)
    readonly_fields = ("order", "kind", "key", "lines", "amount", "requested_by", "created_at")

    def has_add_permission(self, request):
        return False


@admin.register(CommissionEntry)
class CommissionEntryAdmin(admin.ModelAdmin):
    list_display = ("order", "host", "room", "rate", "base", "amount", "status", "settle_after")
    list_filter = ("status",)
    search_fields = ("order__number", "host__handle", "room__title")
    list_select_related = ("order", "host", "room")
    readonly_fields = (
        "line",
        "order",
        "host",
        "room",
        "rate",
        "base",
        "amount",
        "currency",
        "created_at",
        "settled_at",
        "reversed_at",
        "reversal_reason",
    )

    def has_add_permission(self, request):
        return False


class RoomMoneyChangeList(ChangeList):
    """Attaches each listed room's figures to the room itself (one query set per page),
    so nothing is kept on the shared ModelAdmin instance between requests."""

    def get_results(self, request):
        super().get_results(request)
        money = selectors.room_money(room_ids=[room.pk for room in self.result_list])
        for room in self.result_list:
            room.money = money.get(room.pk, {})


@admin.register(RoomMoney)
class RoomMoneyAdmin(admin.ModelAdmin):
    """Per room: GMV (every order ever paid), refunds, net sales and the host's commission."""

    list_display = (
        "title",
        "host",
        "orders_n",
        "gmv",
        "refunds",
        "net_sales",
        "commission_pending",
        "commission_settled",
        "commission_reversed",
        "commission_net",
    )
    search_fields = ("title", "host__handle")
    list_select_related = ("host",)
    list_per_page = 50

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_n=Count("orders")).filter(_n__gt=0)

    def get_changelist(self, request, **kwargs):
        return RoomMoneyChangeList

    def _m(self, obj, key):
        return getattr(obj, "money", {}).get(key, "")

    @admin.display(description="orders")
    def orders_n(self, obj):
        return self._m(obj, "orders")

    @admin.display(description="GMV")
    def gmv(self, obj):
        return self._m(obj, "gmv")

    @admin.display(description="refunds")
    def refunds(self, obj):
        return self._m(obj, "refunds")

    @admin.display(description="net sales")
    def net_sales(self, obj):
        return self._m(obj, "net_sales")

    @admin.display(description="commission pending")
    def commission_pending(self, obj):
        return self._m(obj, "commission_pending")

    @admin.display(description="commission settled")
    def commission_settled(self, obj):
        return self._m(obj, "commission_settled")

    @admin.display(description="commission reversed")
    def commission_reversed(self, obj):
        return self._m(obj, "commission_reversed")

    @admin.display(description="commission net")
    def commission_net(self, obj):
        return self._m(obj, "commission_net")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
