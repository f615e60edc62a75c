import pytest
from django.urls import reverse

from accounts import services
from accounts.models import HostProfile, User

pytestmark = pytest.mark.django_db


def test_signup_creates_the_account_and_logs_the_viewer_in(client):
    response = client.post(
        reverse("accounts:signup"),
        {
            "username": "lily",
            "display_name": "Lily",
            "email": "",
            "password1": "tulip-garden-42",
            "password2": "tulip-garden-42",
        },
        follow=True,
    )

    assert response.status_code == 200
    assert response.context["user"].username == "lily"
    assert b"Welcome, Lily!" in response.content
    assert User.objects.get(username="lily").check_password("tulip-garden-42")


def test_signup_with_a_taken_username_or_weak_password_says_why_and_creates_nothing(client):
    services.user_signup(username="lily", password="tulip-garden-42")

    taken = client.post(
        reverse("accounts:signup"),
        {"username": "lily", "password1": "tulip-garden-42", "password2": "tulip-garden-42"},
    )
    weak = client.post(reverse("accounts:signup"), {"username": "rose", "password1": "123", "password2": "123"})

    assert "A user with that username already exists." in taken.content.decode()
    assert "This password is too short" in weak.content.decode()
    assert list(User.objects.values_list("username", flat=True)) == ["lily"]


def test_login_and_logout_through_the_real_pages(client):
    services.user_signup(username="lily", password="tulip-garden-42")

    bad = client.post(reverse("accounts:login"), {"username": "lily", "password": "wrong"})
    assert "Please enter a correct username and password" in bad.content.decode()

    good = client.post(reverse("accounts:login"), {"username": "lily", "password": "tulip-garden-42"}, follow=True)
    assert good.context["user"].is_authenticated
    assert b"Log out" in good.content

    out = client.post(reverse("accounts:logout"), follow=True)
    assert not out.context["user"].is_authenticated
    assert b"Log in" in out.content


def test_logout_by_get_is_refused(client):
    user = services.user_signup(username="lily", password="tulip-garden-42")
    client.force_login(user)

    assert client.get(reverse("accounts:logout")).status_code == 405
    assert client.get(reverse("streams:home")).context["user"].is_authenticated


def test_host_application_waits_for_staff_then_approval_makes_a_host(client, admin_client):
    viewer = services.user_signup(username="mia", password="tulip-garden-42")
    client.force_login(viewer)

    client.post(reverse("accounts:host_apply"), {"handle": "mia-picks", "bio": "Gadgets"})
    profile = HostProfile.objects.get(user=viewer)
    assert profile.status == HostProfile.Status.PENDING
    assert not User.objects.get(pk=viewer.pk).is_host
    assert "waiting for staff review" in client.get(reverse("accounts:host_apply")).content.decode()

    admin_client.post(
        reverse("admin:accounts_hostprofile_changelist"),
        {"action": "approve", "_selected_action": [profile.pk]},
    )

    profile.refresh_from_db()
    assert profile.status == HostProfile.Status.APPROVED
    assert profile.decided_by.is_staff
    assert User.objects.get(pk=viewer.pk).is_host


def test_a_viewer_cannot_approve_themselves(client):
    viewer = services.user_signup(username="mia", password="tulip-garden-42")
    profile = services.host_apply(user=viewer, handle="mia")
    client.force_login(viewer)

    response = client.post(
        reverse("admin:accounts_hostprofile_changelist"), {"action": "approve", "_selected_action": [profile.pk]}
    )

    assert response.status_code == 302 and "/admin/login/" in response.url
    profile.refresh_from_db()
    assert profile.status == HostProfile.Status.PENDING


def test_rejected_host_may_apply_again_and_is_pending_again():
    staff = User.objects.create_user(username="ops", password="x", is_staff=True)
    viewer = services.user_signup(username="mia", password="tulip-garden-42")
    profile = services.host_apply(user=viewer, handle="mia")
    services.host_decide(profile=profile, approve=False, decided_by=staff)

    again = services.host_apply(user=viewer, bio="Second try")

    assert again.pk == profile.pk
    assert again.status == HostProfile.Status.PENDING
    assert again.bio == "Second try"
