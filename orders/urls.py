from django.urls import path

from orders import views

app_name = "orders"

urlpatterns = [
    path("", views.order_list, name="list"),
    path("payments/callback", views.payment_callback, name="payment_callback"),
    path("api/quote", views.quote, name="quote"),
    path("api/buy", views.buy, name="buy"),
    path("rooms/<int:room_id>/offers", views.room_offers, name="room_offers"),
    path("rooms/<int:room_id>/sales", views.room_sales, name="room_sales"),
    path("rooms/<int:room_id>/flash-sales", views.flash_sale_create, name="flash_sale_create"),
    path("<str:number>/", views.order_detail, name="detail"),
    path("<str:number>/status", views.order_status, name="status"),
    path("<str:number>/cancel", views.order_cancel, name="cancel"),
]
