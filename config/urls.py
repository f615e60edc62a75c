from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

from config import views

urlpatterns = [
    path("", include("streams.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("accounts.urls")),
    path("products/", include("catalog.urls")),
    path("orders/", include("orders.urls")),
    path("fulfilment/", include("fulfilment.urls")),
    path("retailer-api/", include("retailer.urls")),
    path("admin/", admin.site.urls),
]

if settings.SERVE_MEDIA:
    urlpatterns += [
        re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
    ]

admin.site.site_header = "Live shopping operations"
admin.site.site_title = "Live shopping admin"
admin.site.index_title = "Catalog, rooms and orders"
