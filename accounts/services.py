"""Writes for accounts: sign-up, host applications and decisions, shipping addresses."""

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import Address, HostProfile, User

MAX_ADDRESSES = 20


class AddressLimitReached(Exception):
    pass


def user_signup(*, username: str, password: str, email: str = "", display_name: str = "") -> User:
    return User.objects.create_user(username=username, password=password, email=email, display_name=display_name)


def _unique_handle(base: str) -> str:
    base = slugify(base)[:32] or "host"
    handle, n = base, 1
    while HostProfile.objects.filter(handle=handle).exists():
        n += 1
        handle = f"{base}-{n}"
    return handle


@transaction.atomic
def host_apply(*, user: User, bio: str = "", handle: str = "") -> HostProfile:
    """Ask to become a host. Idempotent: a second application returns the first."""
    profile, created = HostProfile.objects.select_for_update().get_or_create(
        user=user, defaults={"handle": _unique_handle(handle or user.username), "bio": bio}
    )
    if not created and profile.status == HostProfile.Status.REJECTED:
        profile.status = HostProfile.Status.PENDING
        profile.bio = bio or profile.bio
        profile.decided_at = None
        profile.decided_by = None
        profile.save(update_fields=["status", "bio", "decided_at", "decided_by"])
    return profile


def host_decide(*, profile: HostProfile, approve: bool, decided_by: User) -> HostProfile:
    profile.status = HostProfile.Status.APPROVED if approve else HostProfile.Status.REJECTED
    profile.decided_at = timezone.now()
    profile.decided_by = decided_by
    profile.save(update_fields=["status", "decided_at", "decided_by"])
    return profile


ADDRESS_FIELDS = ("recipient", "phone", "province", "city", "district", "line", "postal_code")


@transaction.atomic
def address_create(*, user: User, make_default: bool = False, **fields) -> Address:
    # Lock the user's row so two concurrent creates agree on the count and the default.
    User.objects.select_for_update().filter(pk=user.pk).first()
    existing = Address.objects.filter(user=user)
    if existing.count() >= MAX_ADDRESSES:
        raise AddressLimitReached(f"You can keep at most {MAX_ADDRESSES} addresses.")
    make_default = make_default or not existing.filter(is_default=True).exists()
    if make_default:
        existing.filter(is_default=True).update(is_default=False)
    address = Address(user=user, is_default=make_default, **{k: fields[k] for k in ADDRESS_FIELDS if k in fields})
    address.full_clean()
    address.save()
    return address


@transaction.atomic
def address_update(*, address: Address, make_default: bool = False, **fields) -> Address:
    for key in ADDRESS_FIELDS:
        if key in fields:
            setattr(address, key, fields[key])
    address.full_clean()
    if make_default and not address.is_default:
        Address.objects.filter(user_id=address.user_id, is_default=True).update(is_default=False)
        address.is_default = True
    address.save()
    return address


@transaction.atomic
def address_delete(*, address: Address) -> None:
    was_default = address.is_default
    user_id = address.user_id
    address.delete()
    if was_default:
        successor = Address.objects.filter(user_id=user_id).order_by("-created_at").first()
        if successor:
            successor.is_default = True
            successor.save(update_fields=["is_default"])
