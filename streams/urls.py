from django.urls import path

from streams import media, views

app_name = "streams"

urlpatterns = [
    path("", views.home, name="home"),
    path("rooms/<int:pk>/", views.room, name="room"),
    path("notifications/", views.notifications, name="notifications"),
    path("studio/", views.studio, name="studio"),
    path("studio/rooms/<int:pk>/", views.studio_room, name="studio_room"),
    path("studio/rooms/<int:pk>/products.json", views.studio_products, name="studio_products"),
    path("studio/rooms/<int:pk>/stats.json", views.studio_stats, name="studio_stats"),
    path("studio/rooms/<int:pk>/<slug:op>", views.studio_action, name="studio_action"),
    # nginx-rtmp callbacks (streams/media.py); no trailing slash: nginx posts to these exactly.
    path("media-hooks/on_publish", media.on_publish, name="media_on_publish"),
    path("media-hooks/on_publish_done", media.on_publish_done, name="media_on_publish_done"),
]
