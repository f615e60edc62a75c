"""Session authentication for websockets that costs nothing for anonymous viewers.

Channels' AuthMiddlewareStack loads the session and the user in a worker thread for every
handshake, even one without a session cookie; a flash of thousands of anonymous viewers
joining a room then queues thousands of thread hops. A handshake without our session
cookie cannot belong to a user, so it gets AnonymousUser at once; every other handshake
goes through Channels' stack unchanged.
"""

from channels.auth import AuthMiddlewareStack
from django.conf import settings
from django.contrib.auth.models import AnonymousUser


def has_session_cookie(scope) -> bool:
    marker = settings.SESSION_COOKIE_NAME.encode() + b"="
    # A look-alike cookie name ("xsessionid=") only sends the handshake the slow, correct way.
    return any(name == b"cookie" and marker in value for name, value in scope.get("headers", ()))


class SessionAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner
        self.authenticated = AuthMiddlewareStack(inner)

    async def __call__(self, scope, receive, send):
        if has_session_cookie(scope):
            return await self.authenticated(scope, receive, send)
        return await self.inner({**scope, "user": AnonymousUser()}, receive, send)
