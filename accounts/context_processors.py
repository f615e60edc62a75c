from django.conf import settings


def site(request):
    user = getattr(request, "user", None)
    return {
        "SITE_NAME": "LiveMart",
        "EMBEDDED": settings.EMBEDDED,
        "is_host": bool(user and user.is_authenticated and user.is_host),
    }
