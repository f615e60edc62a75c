"""One payment gateway interface, and the sandbox gateway that ships as the default.

Gateways are called *outside* any database transaction or lock (see services.order_pay).

Sandbox test cards (any future expiry, any CVC):

    4242 4242 4242 4242  succeeds at once
    4000 0000 0000 0002  is declined
    4000 0000 0000 3220  needs the bank's confirmation: the answer arrives later as a
                         signed callback to /orders/payments/callback

Any other number that passes the Luhn check succeeds; one that fails it is refused
before any stock is reserved.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

CARD_SUCCEEDS = "4242424242424242"
CARD_DECLINES = "4000000000000002"
CARD_NEEDS_CONFIRMATION = "4000000000003220"
TEST_CARDS = (
    (CARD_SUCCEEDS, "Succeeds"),
    (CARD_DECLINES, "Declined"),
    (CARD_NEEDS_CONFIRMATION, "Needs confirmation (arrives a few seconds later)"),
)

SIGNATURE_HEADER = "X-Payment-Signature"
TIMESTAMP_HEADER = "X-Payment-Timestamp"


@dataclass(frozen=True)
class Card:
    number: str

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def brand(self) -> str:
        if self.number.startswith("4"):
            return "Visa"
        if self.number[:2] in {"51", "52", "53", "54", "55"} or self.number[:2] == "22":
            return "Mastercard"
        if self.number.startswith("62"):
            return "UnionPay"
        return "Card"

    @property
    def label(self) -> str:
        return f"{self.brand} •••• {self.last4}"

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(("card:" + self.number).encode()).hexdigest()[:24]


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def parse_card(value) -> Card | None:
    """A card from what a buyer typed ("4242 4242 4242 4242"), or None if it can't be one."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    digits = re.sub(r"[\s-]", "", value)
    if not digits.isdigit() or not 12 <= len(digits) <= 19 or not luhn_ok(digits):
        return None
    return Card(digits)


@dataclass
class ChargeResult:
    status: str  # "succeeded" | "declined" | "requires_confirmation"
    reference: str
    decline_reason: str = ""
    raw: dict = field(default_factory=dict)


class PaymentGateway:
    name = "base"

    def charge(self, *, reference: str, amount: Decimal, currency: str, card: Card, description: str) -> ChargeResult:
        raise NotImplementedError

    def refund(self, *, reference: str, amount: Decimal, currency: str, idempotency_key: str) -> bool:
        """Pay `amount` back on the charge `reference`. The same `idempotency_key` refunds
        at most once, however often (or however concurrently) it is asked."""
        raise NotImplementedError

    def confirm_later(self, *, reference: str) -> None:
        """Called after a `requires_confirmation` charge is recorded. Real gateways do nothing:
        the bank's answer arrives as a signed callback on its own."""


def sign(body: bytes, timestamp: str, secret: str | None = None) -> str:
    secret = secret if secret is not None else settings.PAYMENT_CALLBACK_SECRET
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_callback(*, reference: str, outcome: str, delivery_id: str | None = None, at: int | None = None):
    """(body, headers) of a callback the gateway sends: HMAC-SHA256 over "<timestamp>.<body>"."""
    body = json.dumps(
        {"delivery_id": delivery_id or "dl_" + secrets.token_hex(10), "reference": reference, "outcome": outcome},
        separators=(",", ":"),
    ).encode()
    timestamp = str(at if at is not None else int(time.time()))
    return body, {SIGNATURE_HEADER: sign(body, timestamp), TIMESTAMP_HEADER: timestamp}


class SandboxGateway(PaymentGateway):
    """Behaves like a card gateway without moving money. Nothing leaves the machine."""

    name = "sandbox"

    def charge(self, *, reference: str, amount: Decimal, currency: str, card: Card, description: str) -> ChargeResult:
        raw = {"gateway": self.name, "amount": str(amount), "currency": currency, "card": card.label}
        if card.number == CARD_DECLINES:
            return ChargeResult("declined", reference, "Your bank declined the card.", {**raw, "result": "declined"})
        if card.number == CARD_NEEDS_CONFIRMATION:
            return ChargeResult("requires_confirmation", reference, raw={**raw, "result": "requires_confirmation"})
        return ChargeResult("succeeded", reference, raw={**raw, "result": "succeeded"})

    def refund(self, *, reference: str, amount: Decimal, currency: str, idempotency_key: str) -> bool:
        from django.db import IntegrityError, transaction

        from orders.models import SandboxRefund

        try:
            with transaction.atomic():
                SandboxRefund.objects.create(
                    idempotency_key=idempotency_key, reference=reference, amount=amount, currency=currency
                )
        except IntegrityError:
            pass  # refunded already under this key: the answer is the same, no money moves
        return True

    def confirm_later(self, *, reference: str) -> None:
        """The bank confirms after a short delay and the sandbox sends the signed callback.

        PAYMENT_SANDBOX_CONFIRM_SECONDS = 0 turns this off (tests send callbacks themselves).
        """
        delay = float(getattr(settings, "PAYMENT_SANDBOX_CONFIRM_SECONDS", 3))
        if delay <= 0:
            return
        from orders import tasks

        if settings.CELERY_TASK_ALWAYS_EAGER:
            # In-process mode: a timer stands in for the worker's countdown.
            timer = threading.Timer(delay, tasks.sandbox_send_callback.run, args=(reference, "succeeded"))
            timer.daemon = True
            timer.start()
        else:
            tasks.sandbox_send_callback.apply_async(args=(reference, "succeeded"), countdown=delay)


_GATEWAYS = {"sandbox": SandboxGateway}


def get_gateway() -> PaymentGateway:
    return _GATEWAYS[settings.PAYMENT_BACKEND]()
