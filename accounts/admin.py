from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts import services
from accounts.models import Address, HostProfile, User


class HostProfileInline(admin.StackedInline):
    model = HostProfile
    fk_name = "user"
    extra = 0
    readonly_fields = ("applied_at", "decided_at", "decided_by")


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "display_name", "email", "host_status", "is_staff", "date_joined")
    list_select_related = ("host_profile",)
    search_fields = ("username", "display_name", "email")
    fieldsets = (*BaseUserAdmin.fieldsets, ("Profile", {"fields": ("display_name",)}))
    inlines = [HostProfileInline]

    @admin.display(description="Host")
    def host_status(self, obj):
        profile = getattr(obj, "host_profile", None)
        return profile.get_status_display() if profile else "—"


@admin.register(HostProfile)
class HostProfileAdmin(admin.ModelAdmin):
    list_display = ("handle", "user", "status", "applied_at", "decided_at", "decided_by")
    list_filter = ("status",)
    list_select_related = ("user", "decided_by")
    search_fields = ("handle", "user__username", "user__display_name")
    readonly_fields = ("applied_at", "decided_at", "decided_by")
    actions = ["approve", "reject"]

    @admin.action(description="Approve selected hosts")
    def approve(self, request, queryset):
        for profile in queryset:
            services.host_decide(profile=profile, approve=True, decided_by=request.user)
        self.message_user(request, f"Approved {queryset.count()} host(s).", messages.SUCCESS)

    @admin.action(description="Reject selected hosts")
    def reject(self, request, queryset):
        for profile in queryset:
            services.host_decide(profile=profile, approve=False, decided_by=request.user)
        self.message_user(request, f"Rejected {queryset.count()} host(s).", messages.WARNING)


@admin.register(Address)
class AddressAdmin(admin.ModelAdmin):
    list_display = ("recipient", "user", "city", "province", "is_default", "created_at")
    list_select_related = ("user",)
    search_fields = ("recipient", "user__username", "city")
    raw_id_fields = ("user",)
