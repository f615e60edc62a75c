"""Log-in and sign-up throttling, per account and per address (docs/operations.md).

Log-ins: django-axes. Its backend sits first in AUTHENTICATION_BACKENDS and refuses a
locked account or address before Django's backend checks the password, so a refused
attempt costs no password hashing. AXES_FAILURE_LIMIT failures for one username (from
any address), or from one address (for any username), lock it for AXES_COOLOFF_TIME,
counted from the failure that locked it: tries during the lock-out do not extend it.

Sign-ups: every sign-up POST counts against the address and against the username asked
for, in a window of SIGNUP_WINDOW_SECONDS, in the cache (Redis in the full stack). Past
SIGNUP_LIMIT_PER_ADDRESS or SIGNUP_LIMIT_PER_USERNAME the form is refused before it is
validated (no hashing). With Redis down the sign-up is let through (and logged): being
unable to count is no reason to turn newcomers away.
"""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.shortcuts import render

log = logging.getLogger(__name__)


def client_ip(request) -> str:
    """The client's address: the last hop of X-Forwarded-For behind our proxy (BEHIND_PROXY),
    else the socket's. Anything that is not an IP address is ignored."""
    candidates = []
    if settings.BEHIND_PROXY:
        candidates.append(request.META.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip())
    candidates.append(request.META.get("REMOTE_ADDR", ""))
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return "0.0.0.0"  # noqa: S104 (a placeholder address, never bound)


def _minutes(seconds: float) -> int:
    return max(1, round(seconds / 60))


def lockout_response(request, original_response=None, credentials=None):
    """axes' answer to a locked account or address: the log-in page, saying so, as 429."""
    minutes = _minutes(settings.AXES_COOLOFF_TIME.total_seconds())
    message = (
        f"Too many failed log-ins for this account or from your network. Try again in {minutes} minutes, "
        "or make sure you have the right username."
    )
    form = AuthenticationForm(request, initial={"username": (credentials or {}).get("username", "")})
    context = {"form": form, "throttled": message, "next": request.POST.get("next", "")}
    return render(request, "accounts/login.html", context, status=429)


def signup_allowed(request, username: str) -> bool:
    """Count this sign-up attempt; False once the address or the username is over its limit."""
    window = settings.SIGNUP_WINDOW_SECONDS
    keys = {
        f"signup:addr:{client_ip(request)}": settings.SIGNUP_LIMIT_PER_ADDRESS,
        f"signup:user:{username.strip().lower()[:150]}": settings.SIGNUP_LIMIT_PER_USERNAME,
    }
    allowed = True
    for key, limit in keys.items():
        try:
            cache.add(key, 0, timeout=window)
            count = cache.incr(key)
        except Exception:
            log.warning("sign-up throttle unavailable (cache down); letting the attempt through", exc_info=True)
            return True
        allowed = allowed and count <= limit
    return allowed


def signup_refused_message() -> str:
    minutes = _minutes(settings.SIGNUP_WINDOW_SECONDS)
    return f"Too many sign-ups from your network or for this username. Try again in {minutes} minutes."
