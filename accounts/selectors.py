"""Reads for accounts. Every address read is scoped to its owner."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import Address, User


def address_list(*, user: User) -> QuerySet[Address]:
    return Address.objects.filter(user=user)


def address_get(*, user: User, address_id: int) -> Address:
    """The user's own address, or 404: another viewer's address is indistinguishable
    from one that does not exist."""
    return get_object_or_404(Address, pk=address_id, user=user)
