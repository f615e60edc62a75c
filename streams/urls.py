from django.urls import path

from streams import media, views

app_name = "streams"

urlpatterns = [
    path("", views.home, name="home"),
    path("rooms/<int:pk>/", views.room, name="room"),
    # nginx-rtmp callbacks (streams/media.py); no trailing slash: nginx posts to these exactly.
    path("media-hooks/on_publish", media.on_publish, name="media_on_publish"),
    path("media-hooks/on_publish_done", media.on_publish_done, name="media_on_publish_done"),
]
