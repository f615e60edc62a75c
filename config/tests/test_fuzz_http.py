"""Fuzzing the HTTP entry points: Hypothesis writes headers and bodies for every signed
callback (payment gateway, retailer, the sandbox retailer's API), the media hooks, the
JSON endpoints and every form. Nothing answers 5xx, and a refused request (4xx) changes
nothing in the database. Bounded: 300 requests per endpoint family."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as dj_settings
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.tests import rawhttp
from config.tests.fuzzing import JSON, TEXT, db_state, encode
from fulfilment import callbacks
from orders import payments
from orders.tests import factories as f
from retailer import api, signing
from streams.tests.factories import make_room, make_user

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 300  # per endpoint family: under half a minute each on a 2-core machine
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip

# Header values as a server passes them on: any byte but CR, LF and NUL (which HTTP/1.1
# parsers refuse before an application sees them).
HEADER = st.binary(max_size=40).map(lambda b: bytes(x for x in b if x >= 0x20 or x == 0x09)) | st.sampled_from(
    [b"", "¹²³".encode("latin-1"), b"1" * 13, str(int(time.time())).encode(), b"0" * 64]
)
BODY = st.binary(max_size=300) | JSON.map(lambda v: encode(v).encode())
# Form text a browser can send: any unicode but surrogate halves (UTF-8 cannot carry them).
FORM_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=30) | st.sampled_from(
    ["", "0", "-1", "9" * 30, "٣", "¹", "2030-02-30T10:00", "1e9", "\x00", "4242 4242 4242 4242"]
)


def check(status: int, before: dict, what) -> None:
    assert status < 500, what
    if status >= 400:
        after = db_state()
        changed = [t for t in after if after[t] != before.get(t)]
        assert changed == [], f"{changed} changed by a refused request: {what!r}"


def post_raw(path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    status, _ = async_to_sync(rawhttp.request)(path, body=body, headers=[(b"content-type", b"application/json"),
                                                                         *headers])  # fmt: skip
    return status


def signed_body(data) -> bytes:
    """A fuzzed JSON body that passes the signature check, so the body parser is what is tested."""
    return encode(data).encode()


CALLBACK_KEYS = ("delivery_id", "reference", "outcome", "event", "order_key", "carrier", "waybill", "return_key")
CALLBACK_FIELDS = st.fixed_dictionaries({}, optional=dict.fromkeys(CALLBACK_KEYS, JSON | TEXT))


def test_fuzzed_signed_callbacks_and_sandbox_api():
    f.shelf_item(stock=3)

    @FUZZ
    @given(stamp=HEADER, signature=HEADER, body=BODY, fields=CALLBACK_FIELDS | JSON, which=st.integers(0, 5),
           endpoint=st.sampled_from(sorted(api.ENDPOINTS)) | TEXT.map(lambda t: t.encode("utf-8", "replace")
                                                                          .decode("ascii", "ignore")))  # fmt: skip
    def one(stamp, signature, body, fields, which, endpoint):
        before = db_state()
        now = str(int(time.time()))
        if which == 0:  # anything at all, unsigned
            status = post_raw("/orders/payments/callback", body,
                              [(b"x-payment-timestamp", stamp), (b"x-payment-signature", signature)])  # fmt: skip
        elif which == 1:
            status = post_raw("/fulfilment/retailer/callback", body,
                              [(b"x-retailer-timestamp", stamp), (b"x-retailer-signature", signature)])  # fmt: skip
        elif which == 2:  # correctly signed, hostile body
            raw = signed_body(fields)
            status = post_raw("/orders/payments/callback", raw, [(b"x-payment-timestamp", now.encode()),
                              (b"x-payment-signature", payments.sign(raw, now).encode())])  # fmt: skip
        elif which == 3:
            raw = signed_body(fields)
            status = post_raw("/fulfilment/retailer/callback", raw, [(b"x-retailer-timestamp", now.encode()),
                              (b"x-retailer-signature", callbacks.sign(raw, now).encode())])  # fmt: skip
        else:  # the sandbox retailer's API, signed or not
            raw = signed_body(fields) if which == 4 else body
            sig = signing.sign(dj_settings.RETAILER_API_SECRET, now, raw).encode() if which == 4 else signature
            status = post_raw(f"/retailer-api/v1/{endpoint}", raw, [(b"x-retailer-key", b"live-partner"),
                              (b"x-retailer-timestamp", now.encode() if which == 4 else stamp),
                              (b"x-retailer-signature", sig)])  # fmt: skip
        check(status, before, (which, stamp, signature, body, fields, endpoint))

    one()


def test_fuzzed_media_hooks_and_json_endpoints():
    room = make_room()
    buyer = f.user()
    f.address(buyer)
    host, shopper = Client(), Client()
    host.force_login(room.host.user)
    shopper.force_login(buyer)

    @FUZZ
    @given(form=st.dictionaries(st.sampled_from(["call", "app", "name", "addr", "secret"]) | FORM_TEXT, FORM_TEXT,
                                max_size=5), data=JSON, raw=BODY, which=st.integers(0, 4))  # fmt: skip
    def one(form, data, raw, which):
        before = db_state()
        if which == 0:
            status = Client().post("/media-hooks/on_publish", form).status_code
        elif which == 1:
            status = Client().post("/media-hooks/on_publish_done", form).status_code
        elif which == 2:
            status = shopper.post("/orders/api/buy", encode(data), content_type="application/json").status_code
        elif which == 3:
            body = raw or encode(data).encode()
            url = f"/orders/rooms/{room.pk}/flash-sales"
            status = host.post(url, body, content_type="application/json").status_code
        else:
            status = shopper.get("/orders/api/quote", form).status_code
        check(status, before, (which, form, data, raw))

    one()


STUDIO_OPS = ["edit", "shelf_add", "shelf_update", "shelf_remove", "pin", "unpin", "mod_add", "mod_remove", "unban",
              "unmute", "slow_mode", "no-such-op"]  # fmt: skip
FORMS = ["/accounts/login/", "/accounts/signup/", "/accounts/addresses/new/", "/accounts/host/", "/studio/",
         "studio-op", "/fulfilment/orders/{order}/cancel", "/fulfilment/orders/{order}/return",
         "/orders/{order}/cancel", "/notifications/"]  # fmt: skip
FIELD_NAMES = st.sampled_from(["username", "password", "password1", "password2", "email", "display_name", "recipient",
                               "phone", "province", "city", "district", "line", "postal_code", "make_default",
                               "handle", "bio", "title", "description", "scheduled_start", "item_id", "product_id",
                               "live_price", "per_user_limit", "position", "user_id", "seconds", "reason", "line",
                               "next", "back"])  # fmt: skip


FORM = st.dictionaries(FIELD_NAMES | FORM_TEXT, FORM_TEXT | st.lists(FORM_TEXT, max_size=3), max_size=8)


def test_fuzzed_forms():
    from orders import services

    dj_settings.PAYMENT_SANDBOX_CONFIRM_SECONDS = 0
    room = make_room()
    viewer = make_user()
    placed = services.order_place(user=viewer, shelf_item_id=room.shelf.first().pk, quantity=1,
                                  address_id=f.address(viewer).pk, payment_method=f.CARD_OK,
                                  idempotency_key="fuzz-forms-order")  # fmt: skip
    host, shopper = Client(), Client()
    host.force_login(room.host.user)
    shopper.force_login(viewer)
    number = placed.order.number

    @FUZZ
    @given(page=st.sampled_from(FORMS), op=st.sampled_from(STUDIO_OPS), form=FORM)
    def one(page, op, form):
        before = db_state()
        who = host if page in ("/studio/", "studio-op", "/accounts/host/") else shopper
        url = f"/studio/rooms/{room.pk}/{op}" if page == "studio-op" else page.format(order=number)
        if page in ("/accounts/login/", "/accounts/signup/"):
            who = Client()
        status = who.post(url, form, REMOTE_ADDR="203.0.113.50").status_code
        check(status if status != 200 else 400, before, (url, form))  # a 200 answer is the form again: refused

    one()
