"""Typed errors with a stable `code` and a message a shopper understands.

Consumers and views send `{"code": err.code, "message": err.message, **err.extra}`.
"""

from __future__ import annotations


class OrderError(Exception):
    code = "order_error"
    message = "Something went wrong with your order. Please try again."

    def __init__(self, message: str | None = None, **extra):
        self.message = message or self.message
        self.extra = extra
        super().__init__(self.message)

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, **self.extra}


class InvalidRequest(OrderError):
    code = "invalid_request"
    message = "That request was not understood."


class NotFound(OrderError):
    code = "not_found"
    message = "We couldn't find that."


class SoldOut(OrderError):
    code = "sold_out"
    message = "Sorry, it's sold out."


class LimitReached(OrderError):
    code = "limit_reached"
    message = "You've reached the limit for this product."


class SaleNotStarted(OrderError):
    code = "sale_not_started"
    message = "The flash sale hasn't started yet."


class SaleOver(OrderError):
    code = "sale_over"
    message = "The flash sale is over."


class RoomEnded(OrderError):
    code = "room_ended"
    message = "This live room has ended, so its offers are closed."


class RoomNotLive(OrderError):
    code = "room_not_live"
    message = "You can buy once the room is live."


class NotAvailable(OrderError):
    code = "not_available"
    message = "This product can't be bought in the room right now."


class PriceChanged(OrderError):
    code = "price_changed"
    message = "The price has changed."


class AddressInvalid(OrderError):
    code = "address_invalid"
    message = "Please choose a shipping address."


class CardInvalid(OrderError):
    code = "card_invalid"
    message = "That card number doesn't look right. Please check it."


class PaymentDeclined(OrderError):
    code = "payment_declined"
    message = "Your card was declined. No money was taken; try another card."


class ReservationExpired(OrderError):
    code = "reservation_expired"
    message = "Your reservation expired, so the items went back on sale."


class IdempotencyConflict(OrderError):
    code = "idempotency_conflict"
    message = "This request was already used for a different purchase. Please start again."


class IllegalTransition(OrderError):
    code = "illegal_transition"
    message = "That can't be done to this order now."


class NotAllowed(OrderError):
    code = "not_allowed"
    message = "Only the room's host can do that."


class FlashSaleInvalid(OrderError):
    code = "flash_sale_invalid"
    message = "That flash sale can't be started."
