"""Permissions-Policy on every response: the browser features a page may use.

Camera and microphone only on the studio pages (under /studio/), where a host may go
live with the browser's camera; every other page may use neither, nor location, payment
handlers or USB. The Content-Security-Policy, Referrer-Policy and Cross-Origin-Opener-Policy
are Django's own (settings SECURE_CSP, SECURE_REFERRER_POLICY,
SECURE_CROSS_ORIGIN_OPENER_POLICY); docs/operations.md lists them all.
"""

from __future__ import annotations

DENIED = "accelerometer=(), geolocation=(), gyroscope=(), magnetometer=(), payment=(), usb=()"
STUDIO_PREFIX = "/studio/"
STUDIO = f"camera=(self), microphone=(self), {DENIED}"
ELSEWHERE = f"camera=(), microphone=(), {DENIED}"


class PermissionsPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Permissions-Policy" not in response:
            response["Permissions-Policy"] = STUDIO if request.path.startswith(STUDIO_PREFIX) else ELSEWHERE
        return response
