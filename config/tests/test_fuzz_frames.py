"""Fuzzing the room socket: Hypothesis writes frames for every client message type of
docs/protocol.md (any JSON, any unicode with surrogate halves and control characters, deep
nesting, huge numbers, wrong types). After each frame the socket still answers a ping,
every error carries a documented code, and a refused frame changed nothing in the
database. Bounded: a thousand frames per persona (docs/protocol.md, "Limits")."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from django.conf import settings as dj_settings
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from config.tests.fuzzing import JSON, ROOT, TEXT, db_state, documented_codes, encode, nested
from streams import consumers
from streams.tests.factories import connect, make_room, make_user

pytestmark = pytest.mark.django_db(transaction=True)

# The fields each documented client message takes (docs/protocol.md, "Client → server"
# and "Buying in the room").
FIELDS = {
    "ping": [], "snapshot.request": [], "chat.send": ["text"], "like": ["count"], "follow": ["follow"],
    "pin": ["item_id"], "unpin": [], "chat.remove": ["message_id"], "mute": ["user_id", "minutes"],
    "unmute": ["user_id"], "ban": ["user_id"], "slow_mode": ["seconds"], "buy.quote": ["item", "quantity", "sale"],
    "buy": ["item", "quantity", "address", "card", "key", "sale", "expected_unit_price"],
    "flash_sale.start": ["item", "sale_price", "quantity", "per_user_limit", "duration_seconds", "starts_in_seconds"],
}  # fmt: skip
DIRECT = {"error", "ack", "pong", "snapshot", "buy.result", "buy.quote"}  # answers to this socket's frame
SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
EXAMPLES = 1000  # per persona: well under a minute each on a 2-core machine

PLAUSIBLE = st.sampled_from(["4242 4242 4242 4242", "buy-key-123", "1.00", True, False])
VALUE = JSON | st.integers(min_value=-3, max_value=400) | PLAUSIBLE


@st.composite
def structured(draw) -> str:
    kind = draw(st.sampled_from(sorted(FIELDS)) | TEXT)
    fields = FIELDS.get(kind, [])
    message = {"type": kind} if draw(st.integers(0, 9)) else {"type": draw(JSON)}
    for name in draw(st.lists(st.sampled_from(fields), unique=True)) if fields else []:
        message[name] = draw(VALUE)
    extra = draw(st.dictionaries(TEXT, JSON, max_size=2))
    message.update({k: v for k, v in extra.items() if k != "type"})
    if draw(st.booleans()):
        message["ref"] = draw(JSON)
    return encode(message)


@st.composite
def hostile(draw) -> str:
    kind = draw(st.sampled_from(sorted(FIELDS)))
    shape = draw(st.sampled_from(["deep", "big_number", "raw", "not_object", "big_float"]))
    if shape == "deep":
        return json.dumps({"type": kind, "ref": "d"})[:-1] + ', "x": ' + nested(draw(st.integers(5, 2000))) + "}"
    if shape == "big_number":
        zeros = "0" * draw(st.integers(15, 4000))
        return f'{{"type": "{kind}", "count": 1{zeros}, "item": 2}}'
    if shape == "big_float":
        return f'{{"type": "{kind}", "seconds": 1e{draw(st.integers(300, 999))}}}'
    if shape == "not_object":
        return encode(draw(JSON))
    return draw(st.text(max_size=200))  # whatever a socket can carry as text (no surrogates: UTF-8)


FRAMES = structured() | hostile()


def documented_types() -> set[str]:
    text = (ROOT / "docs" / "protocol.md").read_text()
    client = text.split("## Client → server", 1)[1].split("Examples:", 1)[0]
    types = set(re.findall(r"^\| `([a-z_.]+)` \|", client, re.M))
    buying = text.split("## Buying in the room", 1)[1].split("### Server → this socket", 1)[0]
    return types | set(re.findall(r'\{"type": "([a-z_.]+)"', buying))


def test_every_documented_client_message_type_is_fuzzed():
    assert documented_types() == set(FIELDS)


async def _exchange(ws, frame: str, n: int) -> list[dict]:
    """Send `frame` then a ping; the frames that came before the pong."""
    await ws.send_input({"type": "websocket.receive", "text": frame})  # an empty frame too
    await ws.send_to(text_data=json.dumps({"type": "ping", "ref": f"fuzz-{n}"}))
    seen = []
    deadline = time.monotonic() + 15
    while True:
        out = await ws.receive_output(timeout=max(0.1, deadline - time.monotonic()))
        if out["type"] == "websocket.close":
            pytest.fail(f"the socket closed ({out.get('code')}) after {frame[:200]!r}")
        event = json.loads(out["text"])
        if event["type"] == "pong" and event.get("ref") == f"fuzz-{n}":
            return seen
        seen.append(event)


def fuzz_as(persona: str, monkeypatch) -> None:
    monkeypatch.setattr(consumers, "FLOOD_MESSAGES", 10**9)  # the flood limit has its own tests
    dj_settings.PAYMENT_SANDBOX_CONFIRM_SECONDS = 0
    room = make_room()
    user = room.host.user if persona == "host" else make_user()
    codes = documented_codes()
    runner = asyncio.Runner()
    ws, _ = runner.run(connect(room.pk, user))
    runner.run(asyncio.sleep(2.5))  # the counts ticker records the first peak (a write not the fuzz's doing)
    counter = iter(range(10**9))

    @settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True, suppress_health_check=SLOW_OK)
    @given(frame=FRAMES)
    def one_frame(frame):
        assume(len(frame.encode("utf-8", "surrogatepass")) <= dj_settings.WS_MAX_FRAME_BYTES)
        before = db_state()
        seen = runner.run(_exchange(ws, frame, next(counter)))
        answers = [e for e in seen if e["type"] in DIRECT]
        for event in answers:
            code = event.get("code") if event["type"] == "error" or event.get("ok") is False else None
            assert code is None or code in codes, (code, frame)
            assert code != "server_error", frame
        refused = answers and all(e["type"] == "error" or e.get("ok") is False for e in answers)
        if refused and len(answers) == len(seen):
            after = db_state()
            changed = [t for t in after if after[t] != before.get(t)]
            assert changed == [], f"{changed} changed after {frame!r} was refused: {answers}"

    try:
        one_frame()
    finally:
        runner.run(ws.disconnect())
        runner.close()


def test_fuzzed_frames_from_a_viewer(monkeypatch):
    fuzz_as("viewer", monkeypatch)


def test_fuzzed_frames_from_the_host(monkeypatch):
    fuzz_as("host", monkeypatch)
