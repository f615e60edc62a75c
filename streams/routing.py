from django.urls import path

from streams import consumers

websocket_urlpatterns = [
    path("ws/hello/", consumers.HelloConsumer.as_asgi()),
    path("ws/rooms/<int:room_id>/", consumers.RoomConsumer.as_asgi()),
]
