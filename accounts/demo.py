"""Demo people for `seed_demo`: a staff user, an approved host, a viewer with an address."""

from django.utils import timezone

from accounts.models import Address, HostProfile, User

DEMO_LOGINS = [
    # (role, username, password, display name)
    ("staff", "staff", "run-the-shop", "Ops Lin"),
    ("host", "host", "go-live-now", "Mia Chen"),
    ("viewer", "viewer", "watch-and-buy", "Wang Lei"),
]


def _user(username: str, password: str, display_name: str, **flags) -> User:
    user, created = User.objects.get_or_create(username=username, defaults={"display_name": display_name, **flags})
    if created:
        user.set_password(password)
        user.save(update_fields=["password"])
    return user


def seed_people() -> dict[str, User]:
    logins = {role: (username, password, name) for role, username, password, name in DEMO_LOGINS}
    staff = _user(*logins["staff"], is_staff=True, is_superuser=True, email="ops@example.com")
    host = _user(*logins["host"], email="mia@example.com")
    viewer = _user(*logins["viewer"], email="wang@example.com")

    HostProfile.objects.get_or_create(
        user=host,
        defaults={
            "handle": "mia-picks",
            "bio": "Kitchen gadgets and everyday tech, tested live.",
            "status": HostProfile.Status.APPROVED,
            "decided_at": timezone.now(),
            "decided_by": staff,
        },
    )
    if not viewer.addresses.exists():
        Address.objects.create(
            user=viewer,
            recipient="Wang Lei",
            phone="+86 138 0013 8000",
            province="Shanghai",
            city="Shanghai",
            district="Pudong",
            line="88 Century Avenue, Apt 1203",
            postal_code="200120",
            is_default=True,
        )
    return {"staff": staff, "host": host, "viewer": viewer}
