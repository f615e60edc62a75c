"""ASGI entry point: HTTP through Django, websockets through Channels.

`uvicorn config.asgi:application` (or daphne) serves both.
"""

import os
import sys
import warnings

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# WhiteNoise hands Django a file iterator; under ASGI Django reads it in a thread and warns
# each time. nginx serves static files in production; the warning is noise here.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")
# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from config.checks import refuse_unsafe_settings  # noqa: E402

refuse_unsafe_settings()  # production with a published secret or a sandbox without opt-in: stop here

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import get_resolver  # noqa: E402

from config import embedded_beat  # noqa: E402
from config.ws_auth import SessionAuthMiddleware  # noqa: E402
from retailer import asgi as retailer_asgi  # noqa: E402
from streams.routing import websocket_urlpatterns  # noqa: E402

# A web process writes thousands of frames on its event loop while database work runs in
# a thread; with the default 5 ms GIL switch interval each query of a pin can wait that
# long for the loop to let go. Web processes only (workers keep the default).
if sys.getswitchinterval() > settings.WEB_GIL_SWITCH_INTERVAL:
    sys.setswitchinterval(settings.WEB_GIL_SWITCH_INTERVAL)


def _warm_url_resolvers(resolver) -> None:
    """Build every resolver's reverse tables now. Built lazily, the first `reverse()` on the
    event loop (a buyer's order link, in a flash sale's first second) stalled the loop while
    thousands of buyers waited: about 150 ms cold on this machine, more under load."""
    resolver.reverse_dict  # noqa: B018 (a property that builds the tables)
    for _prefix, child in resolver.namespace_dict.values():
        _warm_url_resolvers(child)


_warm_url_resolvers(get_resolver())

if settings.EMBEDDED and settings.EMBEDDED_BEAT:
    embedded_beat.start()


async def lifespan(scope, receive, send) -> None:
    """The server's start and stop (ASGI lifespan): the flash sale's connections open at start."""
    from orders import fastpath

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await fastpath.warm()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter(
    {
        "lifespan": lifespan,
        # The sandbox retailer's signed API skips Django's middleware (retailer/asgi.py).
        "http": retailer_asgi.mount(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(SessionAuthMiddleware(URLRouter(websocket_urlpatterns))),
    }
)
