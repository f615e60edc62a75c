import pytest
from django.urls import reverse

from accounts import services
from accounts.models import Address

pytestmark = pytest.mark.django_db

VALID = {
    "recipient": "Wang Lei",
    "phone": "+86 138 0013 8000",
    "province": "Shanghai",
    "city": "Shanghai",
    "district": "Pudong",
    "line": "88 Century Avenue",
    "postal_code": "200120",
}


@pytest.fixture
def viewer():
    return services.user_signup(username="wang", password="tulip-garden-42")


@pytest.fixture
def other():
    return services.user_signup(username="zhao", password="tulip-garden-42")


def test_first_address_becomes_the_default_and_shows_on_the_page(client, viewer):
    client.force_login(viewer)

    response = client.post(reverse("accounts:address_create"), VALID, follow=True)

    page = response.content.decode()
    assert "Address saved." in page
    assert "88 Century Avenue" in page and "Default" in page
    assert Address.objects.get(user=viewer).is_default


def test_making_another_address_default_leaves_exactly_one_default(client, viewer):
    first = services.address_create(user=viewer, **VALID)
    second = services.address_create(user=viewer, **{**VALID, "line": "1 Nanjing Road"})
    client.force_login(viewer)

    client.post(reverse("accounts:address_default", args=[second.pk]))

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.is_default, second.is_default) == (False, True)


def test_deleting_the_default_promotes_another(client, viewer):
    first = services.address_create(user=viewer, **VALID)
    second = services.address_create(user=viewer, **{**VALID, "line": "1 Nanjing Road"})
    client.force_login(viewer)

    client.post(reverse("accounts:address_delete", args=[first.pk]))

    second.refresh_from_db()
    assert second.is_default
    assert not Address.objects.filter(pk=first.pk).exists()


def test_invalid_address_is_explained_and_not_saved(client, viewer):
    client.force_login(viewer)

    response = client.post(reverse("accounts:address_create"), {**VALID, "phone": "call me", "city": ""})

    page = response.content.decode()
    assert "Enter a phone number of 7 to 20 digits." in page
    assert "This field is required." in page
    assert not Address.objects.exists()


def test_a_viewer_never_sees_or_uses_anothers_address(client, viewer, other):
    theirs = services.address_create(user=other, **{**VALID, "recipient": "Zhao Min", "line": "7 Secret Lane"})
    services.address_create(user=viewer, **VALID)
    client.force_login(viewer)

    listing = client.get(reverse("accounts:addresses")).content.decode()
    assert "7 Secret Lane" not in listing and "Zhao Min" not in listing

    assert client.get(reverse("accounts:address_edit", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("accounts:address_edit", args=[theirs.pk]), VALID).status_code == 404
    assert client.post(reverse("accounts:address_delete", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("accounts:address_default", args=[theirs.pk])).status_code == 404

    theirs.refresh_from_db()
    assert theirs.line == "7 Secret Lane" and theirs.recipient == "Zhao Min"
    assert theirs.user == other


def test_addresses_need_a_login(client):
    response = client.get(reverse("accounts:addresses"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_address_pages_refuse_unknown_ids_cleanly(client, viewer):
    client.force_login(viewer)

    assert client.get("/accounts/addresses/999999/").status_code == 404
    assert client.get("/accounts/addresses/not-a-number/").status_code == 404


def test_saving_an_address_goes_back_only_to_pages_on_this_site(client, viewer):
    client.force_login(viewer)

    offsite = client.post(reverse("accounts:address_create"), {**VALID, "next": "https://evil.example/phish"})
    onsite = client.post(reverse("accounts:address_create"), {**VALID, "line": "2 Road", "next": "/rooms/1/"})

    assert offsite.status_code == 302 and offsite.url == reverse("accounts:addresses")
    assert onsite.status_code == 302 and onsite.url == "/rooms/1/"
