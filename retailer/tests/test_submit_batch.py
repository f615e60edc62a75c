"""`orders/submit-batch`: many submits in one call, each answered as `orders/submit` would
answer it alone; bad input refused with nothing changed."""

import pytest

from retailer import api
from retailer.models import SandboxOrder
from retailer.services import product_put, product_stock, set_fault

pytestmark = pytest.mark.django_db


def order(key, sku="BATCH-1", quantity=1, **extra):
    return {"key": key, "lines": [{"sku": sku, "quantity": quantity}], "address": {"city": "Hangzhou"},
            "total": "149.00", "currency": "CNY", **extra}  # fmt: skip


@pytest.fixture
def stocked():
    product_put(sku="BATCH-1", stock=3, title="Batch earbuds")


def test_each_order_is_answered_alone_and_a_key_ships_once(stocked):
    answer = api.handle("orders/submit-batch", {"orders": [order("A"), order("B", quantity=2), order("A")]})
    a, b, a_again = answer["results"]
    assert (a["order"]["status"], b["order"]["status"]) == ("accepted", "accepted")
    assert not a["duplicate"] and a_again["duplicate"] and a_again["order"]["id"] == a["order"]["id"]
    assert product_stock(sku="BATCH-1") == 0
    # The whole call again (a lost answer, retried): the same answers, nothing shipped twice.
    again = api.handle("orders/submit-batch", {"orders": [order("A"), order("B", quantity=2)]})["results"]
    assert [r["order"]["id"] for r in again] == [a["order"]["id"], b["order"]["id"]]
    assert all(r["duplicate"] for r in again)
    assert product_stock(sku="BATCH-1") == 0
    assert SandboxOrder.objects.get(partner_key="A").times_submitted == 3


def test_the_stock_runs_out_part_way_through_a_batch(stocked):
    results = api.handle("orders/submit-batch", {"orders": [order("A", quantity=2), order("B", quantity=2)]})
    first, second = results["results"]
    assert first["order"]["status"] == "accepted"
    assert second["order"]["status"] == "refused" and second["order"]["refusal"]["code"] == "out_of_stock"
    assert product_stock(sku="BATCH-1") == 1


def test_an_unreadable_order_gets_its_error_in_place_and_the_rest_go_on(stocked):
    results = api.handle("orders/submit-batch", {"orders": [order("A", quantity=0), "junk", order("B")]})["results"]
    assert results[0]["error"]["code"] == "bad_lines"
    assert results[1]["error"]["code"] == "bad_request"
    assert results[2]["order"]["status"] == "accepted"
    assert list(SandboxOrder.objects.values_list("partner_key", flat=True)) == ["B"]


@pytest.mark.parametrize("orders", [None, [], "A", [order(str(i)) for i in range(101)]])
def test_a_batch_that_is_not_a_list_of_orders_is_refused_whole(stocked, orders):
    with pytest.raises(api.ApiError) as refused:
        api.handle("orders/submit-batch", {"orders": orders})
    assert (refused.value.status, refused.value.code) == (400, "bad_orders")
    assert not SandboxOrder.objects.exists() and product_stock(sku="BATCH-1") == 3


def test_a_fault_switched_on_for_submit_hits_the_batch_too(stocked):
    set_fault(kind="error", times=1, endpoint="orders/submit")
    with pytest.raises(api.ApiError) as failed:
        api.handle("orders/submit-batch", {"orders": [order("A")]})
    assert failed.value.status >= 500
    assert not SandboxOrder.objects.exists()
    assert api.handle("orders/submit-batch", {"orders": [order("A")]})["results"][0]["order"]["status"] == "accepted"


@pytest.mark.django_db(transaction=True)
def test_two_batches_with_the_same_keys_at_once_ship_each_key_once():
    import threading

    from django.db import connection

    product_put(sku="BATCH-1", stock=10, title="Batch earbuds")
    answers, start = [], threading.Barrier(2)

    def call(keys):
        start.wait(10)
        try:
            answers.append(api.handle("orders/submit-batch", {"orders": [order(k) for k in keys]})["results"])
        finally:
            connection.close()

    threads = [threading.Thread(target=call, args=(keys,)) for keys in (["A", "B", "C"], ["C", "B", "D"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == 2
    ids = {}
    for results in answers:
        for r in results:
            ids.setdefault(r["order"]["key"], set()).add(r["order"]["id"])
    assert all(len(v) == 1 for v in ids.values())  # both calls got the same order for B and C
    assert sorted(SandboxOrder.objects.values_list("partner_key", flat=True)) == ["A", "B", "C", "D"]
    assert product_stock(sku="BATCH-1") == 6
    assert dict(SandboxOrder.objects.values_list("partner_key", "times_submitted")) == {"A": 1, "B": 2, "C": 2, "D": 1}


def test_a_key_already_taken_is_answered_as_before_whatever_the_body_says_now(stocked):
    taken = api.handle("orders/submit", order("A"))
    results = api.handle("orders/submit-batch", {"orders": [order("A", quantity=0), order("B", quantity=0)]})
    again, new = results["results"]
    assert again["duplicate"] and again["order"]["id"] == taken["order"]["id"]  # as orders/submit answers it
    assert new["error"]["code"] == "bad_lines"
    assert dict(SandboxOrder.objects.values_list("partner_key", "times_submitted")) == {"A": 2}
