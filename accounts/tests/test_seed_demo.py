import pytest
from django.core.management import call_command

from accounts.models import Address, HostProfile, User
from streams.models import Room


def counts():
    return {
        "users": User.objects.count(),
        "hosts": HostProfile.objects.count(),
        "addresses": Address.objects.count(),
        "rooms": Room.objects.count(),
    }


@pytest.mark.django_db
def test_seed_demo_twice_creates_nothing_twice_and_prints_the_logins(capsys):
    call_command("seed_demo")
    first = counts()
    out = capsys.readouterr().out
    call_command("seed_demo")

    assert counts() == first
    assert first["users"] == 3 and first["rooms"] >= 1
    for username, password in [("staff", "run-the-shop"), ("host", "go-live-now"), ("viewer", "watch-and-buy")]:
        assert username in out and password in out
        assert User.objects.get(username=username).check_password(password)
    assert User.objects.get(username="host").is_host
    assert User.objects.get(username="staff").is_staff
    assert Address.objects.get(user__username="viewer").is_default
    assert Room.objects.filter(host__user__username="host", status=Room.Status.SCHEDULED).exists()
