from django.urls import path

from streams import views

app_name = "streams"

urlpatterns = [
    path("", views.home, name="home"),
    path("rooms/<int:pk>/", views.room, name="room"),
]
