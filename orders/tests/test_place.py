"""Buying: the server's price, the stock gate, payment outcomes, errors in shoppers' words."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from orders import errors, services
from orders.models import Order, OrderEvent, Payment, StockBucket
from orders.tests import factories as f
from streams.models import Room

pytestmark = pytest.mark.django_db


def place(buyer, item, *, qty=1, card=f.CARD_OK, key=None, address=None, **kw):
    address = address or buyer.addresses.first() or f.address(buyer)
    return services.order_place(
        user=buyer, shelf_item_id=item.pk, quantity=qty, address_id=address.pk, payment_method=card,
        idempotency_key=key or f"key-{buyer.pk}-{item.pk}-{qty}-{card[-4:] if card else 'none'}", **kw,
    )  # fmt: skip


def bucket(item):
    return StockBucket.objects.get(shelf_item=item, kind="regular")


def test_paid_order_takes_price_from_shelf_and_confirms():
    item = f.shelf_item(stock=10, live_price="149.00", price="199.00")
    buyer = f.user()
    result = place(buyer, item, qty=2)
    assert result.ok and result.code == "paid"
    order = Order.objects.get(number=result.order.number)
    assert order.status == Order.Status.PAID
    assert order.total == Decimal("298.00")
    assert order.discount == Decimal("100.00")
    line = order.lines.get()
    assert line.unit_price == Decimal("149.00") and line.quantity == 2
    # the host earns the retailer's default 5% on what was paid
    assert line.commission_amount == Decimal("14.90")
    assert order.payment.status == Payment.Status.SUCCEEDED and order.payment.amount == order.total
    assert list(order.events.values_list("from_status", "to_status")) == [("", "pending_payment"),
                                                                         ("pending_payment", "paid")]  # fmt: skip
    b = bucket(item)
    assert (b.available, b.reserved, b.sold) == (8, 0, 2)
    assert order.address["city"] == "Hangzhou"
    assert order.number.startswith("LM") and len(order.number) == 13


def test_declined_card_releases_stock_and_says_so():
    item = f.shelf_item(stock=5)
    result = place(f.user(), item, qty=2, card=f.CARD_DECLINE)
    assert not result.ok and result.code == "payment_declined"
    assert "declined" in result.message.lower()
    assert result.order.status == Order.Status.PAYMENT_FAILED
    b = bucket(item)
    assert (b.available, b.reserved, b.sold) == (5, 0, 0)


def test_invalid_card_is_refused_before_any_stock_moves():
    item = f.shelf_item(stock=5)
    with pytest.raises(errors.CardInvalid):
        place(f.user(), item, card="1234 5678 9012 3456")
    assert not Order.objects.exists()
    assert not StockBucket.objects.filter(reserved__gt=0).exists()


def test_sold_out_and_only_n_left():
    item = f.shelf_item(stock=2)
    place(f.user(), item, qty=2)
    with pytest.raises(errors.SoldOut) as exc:
        place(f.user(), item)
    assert exc.value.code == "sold_out" and "sold out" in exc.value.message.lower()
    item2 = f.shelf_item(stock=2)
    with pytest.raises(errors.SoldOut) as exc:
        place(f.user(), item2, qty=3)
    assert exc.value.extra["left"] == 2 and "Only 2 left" in exc.value.message


def test_per_user_limit_counts_across_orders():
    item = f.shelf_item(stock=50, limit=3)
    buyer = f.user()
    with pytest.raises(errors.LimitReached):
        place(buyer, item, qty=4)
    place(buyer, item, qty=2, key="first-order")
    with pytest.raises(errors.LimitReached):
        place(buyer, item, qty=2, key="second-order")
    assert place(buyer, item, qty=1, key="third-order").ok


def test_declined_order_gives_the_limit_back():
    item = f.shelf_item(stock=50, limit=2)
    buyer = f.user()
    place(buyer, item, qty=2, card=f.CARD_DECLINE, key="declined-1")
    assert place(buyer, item, qty=2, key="after-decline").code == "paid"


def test_room_ended_and_not_live():
    item = f.shelf_item()
    Room.objects.filter(pk=item.room_id).update(status=Room.Status.ENDED)
    with pytest.raises(errors.RoomEnded) as exc:
        place(f.user(), item)
    assert "ended" in exc.value.message
    item2 = f.shelf_item(room_obj=f.room(status=Room.Status.SCHEDULED))
    with pytest.raises(errors.RoomNotLive):
        place(f.user(), item2)


def test_product_no_longer_sellable():
    item = f.shelf_item()
    item.is_active = False
    item.save()
    with pytest.raises(errors.NotAvailable):
        place(f.user(), item)


def test_price_changed_names_the_new_price():
    item = f.shelf_item(live_price="149.00")
    with pytest.raises(errors.PriceChanged) as exc:
        place(f.user(), item, expected_unit_price="129.00")
    assert exc.value.extra["new_price"] == "149.00" and "149.00" in exc.value.message
    assert place(f.user(), item, expected_unit_price="149.00").ok


def test_someone_elses_address_is_invalid():
    item = f.shelf_item()
    other = f.user()
    theirs = f.address(other)
    buyer = f.user()
    with pytest.raises(errors.AddressInvalid):
        services.order_place(user=buyer, shelf_item_id=item.pk, quantity=1, address_id=theirs.pk,
                             payment_method=f.CARD_OK, idempotency_key="addr-theft-1")  # fmt: skip
    with pytest.raises(errors.AddressInvalid):
        services.order_place(user=buyer, shelf_item_id=item.pk, quantity=1, address_id=None,
                             payment_method=f.CARD_OK, idempotency_key="no-address-1")  # fmt: skip
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    "field,value",
    [("quantity", 0), ("quantity", -1), ("quantity", 100), ("quantity", "two"), ("quantity", True),
     ("shelf_item_id", "abc"), ("shelf_item_id", None), ("idempotency_key", "short"), ("idempotency_key", None),
     ("idempotency_key", "x" * 65), ("idempotency_key", "bad key with spaces")],
)  # fmt: skip
def test_bad_input_is_refused_and_changes_nothing(field, value):
    item = f.shelf_item(stock=5)
    buyer = f.user()
    kwargs = {"user": buyer, "shelf_item_id": item.pk, "quantity": 1, "address_id": f.address(buyer).pk,
              "payment_method": f.CARD_OK, "idempotency_key": "valid-key-1"}  # fmt: skip
    kwargs[field] = value
    with pytest.raises(errors.InvalidRequest):
        services.order_place(**kwargs)
    assert not Order.objects.exists()


def test_same_key_returns_the_same_answer_and_one_order():
    item = f.shelf_item(stock=5)
    buyer = f.user()
    first = place(buyer, item, key="same-key-123")
    again = place(buyer, item, key="same-key-123")
    assert again.replayed and again.as_dict() == first.as_dict()
    assert Order.objects.count() == 1 and Payment.objects.count() == 1
    assert bucket(item).sold == 1


def test_same_key_with_a_different_body_is_refused():
    item = f.shelf_item(stock=5)
    buyer = f.user()
    place(buyer, item, key="same-key-456")
    with pytest.raises(errors.IdempotencyConflict):
        place(buyer, item, qty=2, key="same-key-456")
    with pytest.raises(errors.IdempotencyConflict):
        place(buyer, item, key="same-key-456", card=f.CARD_DECLINE)
    assert Order.objects.count() == 1 and bucket(item).sold == 1


def test_async_confirmation_then_signed_callback_confirms():
    from orders.payments import signed_callback

    item = f.shelf_item(stock=5)
    result = place(f.user(), item, card=f.CARD_CONFIRM)
    assert result.ok and result.code == "awaiting_confirmation"
    payment = Payment.objects.get(order__number=result.order.number)
    assert payment.status == Payment.Status.REQUIRES_CONFIRMATION
    assert bucket(item).reserved == 1
    body, headers = signed_callback(reference=payment.reference, outcome="succeeded")
    out = services.payment_callback_handle(body=body, signature=headers["X-Payment-Signature"],
                                           timestamp=headers["X-Payment-Timestamp"])  # fmt: skip
    assert out.status == 200 and out.body["result"] == "paid"
    assert Order.objects.get(pk=payment.order_id).status == Order.Status.PAID
    assert bucket(item).sold == 1


def test_expiry_returns_stock_and_tells_the_buyer():
    from streams.models import Notification

    item = f.shelf_item(stock=5)
    buyer = f.user()
    result = place(buyer, item, qty=2, card=None)
    assert result.code == "reserved"
    order = Order.objects.get(number=result.order.number)
    assert not services.reservation_expire(order_id=order.pk)  # not yet due
    later = timezone.now() + timedelta(minutes=11)
    assert services.reservations_sweep(now=later) == 1
    order.refresh_from_db()
    assert order.status == Order.Status.EXPIRED
    assert (bucket(item).available, bucket(item).reserved) == (5, 0)
    assert Notification.objects.filter(user=buyer, text__icontains=order.number).exists()
    ev = order.events.last()
    assert ev.actor_kind == OrderEvent.Actor.SYSTEM and "back on sale" in ev.reason


def test_buyer_cancels_reservation_and_paid_order(django_capture_on_commit_callbacks):
    item = f.shelf_item(stock=5)
    buyer = f.user()
    reserved = place(buyer, item, card=None, key="cancel-me-1").order
    services.order_cancel(user=buyer, order_number=reserved.number)
    paid = place(buyer, item, key="cancel-me-2").order
    with django_capture_on_commit_callbacks(execute=True):  # the refund is queued after commit
        services.order_cancel(user=buyer, order_number=paid.number)
    assert Order.objects.get(pk=paid.pk).status == Order.Status.CANCELLED
    assert Payment.objects.get(order=paid).status == Payment.Status.REFUNDED
    b = bucket(item)
    assert (b.available, b.reserved, b.sold) == (5, 0, 0)
    with pytest.raises(errors.IllegalTransition):
        services.order_cancel(user=buyer, order_number=paid.number)


# --- HTTP: client-claimed fields and other people's orders ------------------------------


def test_client_price_total_and_status_fields_change_nothing(client):
    item = f.shelf_item(stock=5, live_price="149.00")
    buyer = f.user()
    addr = f.address(buyer)
    client.force_login(buyer)
    body = {"item": item.pk, "quantity": 1, "address": addr.pk, "card": f.CARD_OK, "key": "http-key-001",
            "price": "0.01", "unit_price": "0.01", "total": "0.01", "discount": "148.99", "status": "delivered",
            "subtotal": "0", "shipping": "-100", "commission": "0"}  # fmt: skip
    resp = client.post(reverse("orders:buy"), json.dumps(body), content_type="application/json")
    assert resp.status_code == 200 and resp.json()["code"] == "paid"
    order = Order.objects.get()
    assert order.total == Decimal("149.00") and order.status == Order.Status.PAID
    assert order.shipping == Decimal("0.00") and order.lines.get().unit_price == Decimal("149.00")


def test_another_users_order_reveals_and_changes_nothing(client):
    item = f.shelf_item(stock=5)
    owner = f.user()
    order = place(owner, item, card=None).order
    intruder = f.user()
    client.force_login(intruder)
    for url in (reverse("orders:detail", args=[order.number]), reverse("orders:status", args=[order.number])):
        resp = client.get(url)
        assert resp.status_code == 404 and order.number not in resp.content.decode()
    assert client.post(reverse("orders:cancel", args=[order.number])).status_code == 404
    with pytest.raises(errors.NotFound):
        services.order_pay(user=intruder, order_number=order.number, payment_method=f.CARD_OK)
    with pytest.raises(errors.NotFound):
        services.order_cancel(user=intruder, order_number=order.number)
    assert Order.objects.get(pk=order.pk).status == Order.Status.PENDING_PAYMENT
    assert not Payment.objects.exists()
    resp = client.get(reverse("orders:list"))
    assert order.number not in resp.content.decode()


def test_bad_http_input_gets_a_clear_error(client):
    buyer = f.user()
    client.force_login(buyer)
    for body in (b"{not json", b"[]", b'{"item": "x"}', b"x" * 5000):
        resp = client.post(reverse("orders:buy"), body, content_type="application/json")
        assert resp.status_code in (404, 409) and resp.json()["ok"] is False and resp.json()["message"]
    assert client.get(reverse("orders:quote") + "?item=abc").status_code == 409
    assert not Order.objects.exists()


def test_room_sales_figures_for_the_host_only(client):
    from orders import selectors

    item = f.shelf_item(stock=20, live_price="100.00")
    viewers = [f.user() for _ in range(4)]
    for v in viewers:
        services.product_open_record(user=v, shelf_item_id=item.pk)
    place(viewers[0], item, qty=2)
    place(viewers[1], item, qty=1, card=f.CARD_DECLINE)
    place(f.user(), item, qty=1)  # bought without opening the sheet
    sales = selectors.room_sales(room_id=item.room_id)
    assert (sales["orders"], sales["units"], sales["gmv"]) == (2, 3, "300.00")
    row = sales["products"][0]
    assert (row["opened"], row["buyers"], row["conversion"]) == (4, 2, 25.0)
    url = reverse("orders:room_sales", args=[item.room_id])
    client.force_login(viewers[0])
    assert client.get(url).status_code == 404
    client.force_login(item.room.host.user)
    assert client.get(url).json()["gmv"] == "300.00"


def test_staff_admin_shows_orders_and_room_sales(client):
    item = f.shelf_item(stock=5, live_price="100.00")
    order = place(f.user(), item, qty=2).order
    staff = f.user("opsadmin", is_staff=True, is_superuser=True)
    client.force_login(staff)
    for name in ("order", "orderevent", "payment", "stockbucket", "flashsale", "paymentcallback"):
        assert client.get(reverse(f"admin:orders_{name}_changelist")).status_code == 200
    assert order.number in client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
    sales = client.get(reverse("admin:orders_roomsales_changelist")).content.decode()
    assert "¥200.00" in sales and item.room.title in sales
