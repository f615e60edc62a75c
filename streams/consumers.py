"""Websocket consumers. The live-room consumer is filled in by the live-rooms work."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer


class HelloConsumer(AsyncJsonWebsocketConsumer):
    """Answers who the socket belongs to: proves session auth and origin checks end to end."""

    async def connect(self):
        await self.accept()
        user = self.scope["user"]
        await self.send_json({"type": "hello", "user": user.username if user.is_authenticated else None})
