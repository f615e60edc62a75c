"""The "your order shipped" toast reaches only the buyer's sockets in the room."""

import asyncio
import json

from fulfilment.live import ev_order_update
from streams.fanout import CONTROL, Hub, _Room, encode


class FakeSocket:
    def __init__(self, user_id):
        self.user_id = user_id
        self.frames = []

    def push(self, message):
        self.frames.append(message["text"])


def test_a_private_event_goes_to_that_user_only_and_the_control_never_leaks():
    loop = asyncio.new_event_loop()
    try:
        hub = Hub(loop)
        room = _Room(7, loop)
        buyer_phone, buyer_laptop, other, anonymous = FakeSocket(1), FakeSocket(1), FakeSocket(2), FakeSocket(None)
        room.sockets = {buyer_phone, buyer_laptop, other, anonymous}
        hub.rooms[7] = room
        event = ev_order_update(number="LM2611-ABC", status="shipped", status_label="Shipped",
                                text="Your order LM2611-ABC has shipped", url="/orders/LM2611-ABC/")  # fmt: skip
        hub.deliver(7, CONTROL + encode({"op": "send", "user_id": 1, "event": event}))
        for sock in (buyer_phone, buyer_laptop):
            assert [json.loads(f) for f in sock.frames] == [event]
        assert other.frames == [] and anonymous.frames == []
        # An addressee-less "send" reaches nobody (not even anonymous viewers).
        hub.deliver(7, CONTROL + encode({"op": "send", "user_id": None, "event": event}))
        assert anonymous.frames == [] and len(buyer_phone.frames) == 1
    finally:
        loop.close()
