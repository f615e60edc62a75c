"""Production refuses unsafe settings.

With settings.PRODUCTION (DEBUG off, not the embedded default, not the test settings),
each of these is a system check ERROR naming the variable: every management command
that runs checks (`migrate`, `check`) stops, and config/asgi.py refuses to serve
(`refuse_unsafe_settings`), so uvicorn exits before it listens.

- SECRET_KEY, PAYMENT_CALLBACK_SECRET, RETAILER_API_SECRET, RETAILER_CALLBACK_SECRET or
  MEDIA_HOOK_SECRET unset or left at the value published in this repository: anyone who
  read it could sign sessions, "payment succeeded", "order shipped" or a media publish;
- the sandbox gateway or the sandbox retailer without ALLOW_SANDBOX_PAYMENTS /
  ALLOW_SANDBOX_RETAILER;
- "*" in ALLOWED_HOSTS (it is also the websockets' origin check).

docs/operations.md lists every variable and what the server does without it.
"""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.management.base import SystemCheckError

TAG = "production"


def _error(number: int, message: str, hint: str) -> checks.Error:
    return checks.Error(message, hint=hint, id=f"livemart.E{number:03d}")


def _secret_unsafe(name: str) -> bool:
    value = getattr(settings, name, "")
    return not value or value in settings.DEV_SECRETS.values()


SECRETS = [
    (1, "SECRET_KEY", "it signs sessions and CSRF tokens"),
    (2, "PAYMENT_CALLBACK_SECRET", "it signs the payment gateway's callbacks"),
    (3, "RETAILER_API_SECRET", "it signs every call to the retailer's API"),
    (4, "RETAILER_CALLBACK_SECRET", "it signs the retailer's status callbacks (defaults to RETAILER_API_SECRET)"),
]


@checks.register(checks.Tags.security, TAG)
def production_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if not settings.PRODUCTION:
        return []
    errors = []
    for number, name, why in SECRETS:
        if name == "RETAILER_CALLBACK_SECRET" and settings.RETAILER_CALLBACK_SECRET == settings.RETAILER_API_SECRET:
            continue  # it follows RETAILER_API_SECRET, reported above
        if _secret_unsafe(name):
            message = f"{name} is unset or the published default: {why}."
            errors.append(_error(number, message, f"Set {name} to a long random value of your own."))
    if not settings.MEDIA_HOOK_SECRET:
        message = (
            "MEDIA_HOOK_SECRET is unset: without it the media hooks believe any caller on loopback, "
            "which behind a proxy on the same host is everyone."
        )
        errors.append(_error(5, message, "Set MEDIA_HOOK_SECRET; bin/media-server sends it with every hook."))
    if settings.PAYMENT_BACKEND == "sandbox" and not settings.ALLOW_SANDBOX_PAYMENTS:
        message = "PAYMENT_BACKEND is the sandbox gateway (no money moves) and ALLOW_SANDBOX_PAYMENTS is not set."
        hint = "Configure a real gateway, or set ALLOW_SANDBOX_PAYMENTS=1 for a demo or staging stack."
        errors.append(_error(6, message, hint))
    if settings.RETAILER_BACKEND == "inprocess" and not settings.ALLOW_SANDBOX_RETAILER:
        message = (
            "RETAILER_BACKEND is the in-process sandbox retailer (nothing ships); ALLOW_SANDBOX_RETAILER is not set."
        )
        hint = "Set RETAILER_BACKEND=http and RETAILER_API_URL, or ALLOW_SANDBOX_RETAILER=1 for a demo or staging."
        errors.append(_error(7, message, hint))
    if "*" in settings.ALLOWED_HOSTS:
        message = 'ALLOWED_HOSTS contains "*": any Host header and any websocket Origin is accepted.'
        errors.append(_error(8, message, "List the site's host names in ALLOWED_HOSTS."))
    return errors


def refuse_unsafe_settings() -> None:
    """Raise SystemCheckError (the process stops) if the production checks find an error."""
    found = [m for m in checks.run_checks(tags=[TAG]) if m.is_serious() and not m.is_silenced()]
    if found:
        lines = "\n".join(f"  {m}" for m in found)
        raise SystemCheckError(f"Refusing to start: unsafe production settings (docs/operations.md):\n{lines}")
