from django.urls import path

from retailer import views

app_name = "retailer"

urlpatterns = [
    path("v1/<path:name>", views.endpoint, name="endpoint"),
]
