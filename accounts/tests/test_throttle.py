"""Log-in and sign-up throttling, per account and per address (issue 17, finding 5).

The tester made 30 wrong guesses and then logged in with the right password at once;
each guess cost 0.4-1.25 s of CPU. Now each account and each address gets a bounded number
of failures, then a clear refusal that costs no password hashing, for no longer than the
policy's cool-off.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db

PASSWORD = "tulip-garden-42"


class CountingHasher(MD5PasswordHasher):
    """The test hasher, counting every hash it computes (checking a password is one)."""

    algorithm = "md5"
    computed = 0

    def encode(self, password, salt):
        CountingHasher.computed += 1
        return super().encode(password, salt)


@pytest.fixture(autouse=True)
def counting(settings):
    settings.PASSWORD_HASHERS = ["accounts.tests.test_throttle.CountingHasher"]
    CountingHasher.computed = 0
    return CountingHasher


@pytest.fixture
def mia():
    return User.objects.create_user(username="mia", password=PASSWORD)


def log_in(client, username: str, password: str, address: str = "203.0.113.7"):
    return client.post(reverse("accounts:login"), {"username": username, "password": password},
                       REMOTE_ADDR=address)  # fmt: skip


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_thirty_wrong_passwords_then_the_right_one_is_refused_clearly_without_hashing(client, mia, settings):
    answers = [log_in(client, "mia", f"guess-{i}") for i in range(30)]
    hashed = CountingHasher.computed

    answer = log_in(client, "mia", PASSWORD)

    assert answer.status_code == 429
    assert not logged_in(client)
    text = answer.content.decode()
    assert "Too many failed log-ins" in text and f"{settings.AXES_COOLOFF_TIME.seconds // 60} minutes" in text
    assert CountingHasher.computed == hashed  # refused before any password was checked
    assert all(a.status_code in (200, 429) for a in answers)
    # The failure that reaches the limit is already answered with the lock-out.
    assert sum(a.status_code == 429 for a in answers) == 30 - settings.AXES_FAILURE_LIMIT + 1


def test_the_account_is_throttled_from_every_address_and_an_address_for_every_account(client, mia, settings):
    for i in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "mia", "wrong", address=f"198.51.100.{i + 1}")
    assert log_in(client, "mia", PASSWORD, address="192.0.2.200").status_code == 429  # per account

    User.objects.create_user(username="jun", password=PASSWORD)
    for i in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, f"someone{i}", "wrong", address="192.0.2.66")
    assert log_in(client, "jun", PASSWORD, address="192.0.2.66").status_code == 429  # per address
    assert log_in(client, "jun", PASSWORD, address="192.0.2.67").status_code == 302  # another address is fine


def test_a_lock_out_lasts_no_longer_than_the_cool_off(client, mia, settings):
    from axes.models import AccessAttempt

    for i in range(settings.AXES_FAILURE_LIMIT + 5):
        log_in(client, "mia", f"guess-{i}")
    assert log_in(client, "mia", PASSWORD).status_code == 429
    # The cool-off passes (counted from the failure that locked it, not from later tries).
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - settings.AXES_COOLOFF_TIME
                                 - timedelta(seconds=1))  # fmt: skip
    answer = log_in(client, "mia", PASSWORD)
    assert answer.status_code == 302 and logged_in(client)


def test_a_few_mistakes_then_the_right_password_logs_in(client, mia):
    for i in range(3):
        assert log_in(client, "mia", f"typo-{i}").status_code == 200
    assert log_in(client, "mia", PASSWORD).status_code == 302 and logged_in(client)


def sign_up(client, username: str, address: str = "203.0.113.9"):
    form = {"username": username, "password1": "Vivid-otter-93", "password2": "Vivid-otter-93", "email": ""}
    return client.post(reverse("accounts:signup"), form, REMOTE_ADDR=address)


def test_sign_ups_are_throttled_per_address_with_a_clear_message_and_no_hashing(client, settings):
    from django.core.cache import cache

    cache.clear()
    answers = []
    for i in range(30):
        client.logout()
        answers.append(sign_up(client, f"newcomer{i}"))
    hashed = CountingHasher.computed
    client.logout()

    answer = sign_up(client, "one-too-many")

    assert answer.status_code == 429
    assert "Too many sign-ups" in answer.content.decode()
    assert not User.objects.filter(username="one-too-many").exists()
    assert CountingHasher.computed == hashed
    assert [a.status_code for a in answers].count(302) == settings.SIGNUP_LIMIT_PER_ADDRESS
    assert sign_up(client, "from-elsewhere", address="198.51.100.99").status_code == 302


def test_sign_up_attempts_at_one_username_are_throttled_from_every_address(client, settings):
    from django.core.cache import cache

    cache.clear()
    User.objects.create_user(username="taken", password=PASSWORD)
    answers = [sign_up(client, "taken", address=f"198.51.100.{i + 1}") for i in range(20)]
    assert answers[-1].status_code == 429
    assert [a.status_code for a in answers].count(200) == settings.SIGNUP_LIMIT_PER_USERNAME  # "already taken"
