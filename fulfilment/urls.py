from django.urls import path

from fulfilment import views

app_name = "fulfilment"

urlpatterns = [
    path("retailer/callback", views.retailer_callback, name="callback"),
    path("orders/<str:number>/cancel", views.order_cancel, name="cancel"),
    path("orders/<str:number>/return", views.order_return, name="return"),
    path("earnings/", views.earnings, name="earnings"),
    path("earnings/rooms/<int:room_id>.csv", views.earnings_csv, name="earnings_csv"),
]
