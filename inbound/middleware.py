"""Form fields and query strings through the same text rule as everything else (inbound).

A request whose query string or form fields (names or values) hold U+0000 or another
control character is answered 400 `bad_text` before any view sees it: PostgreSQL refuses
NUL in text, and no field of ours takes control characters. (A form body cannot carry a
lone surrogate: Django decodes it as UTF-8, replacing what is not.) Size and field-count
limits are Django's own: DATA_UPLOAD_MAX_MEMORY_SIZE and DATA_UPLOAD_MAX_NUMBER_FIELDS.
"""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse

import inbound

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _clean(data) -> bool:
    return all(inbound.text_ok(key) and all(inbound.text_ok(v) for v in data.getlist(key)) for key in data)


class FormTextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        form = request.method == "POST" and request.content_type in FORM_TYPES
        if not _clean(request.GET) or (form and not _clean(request.POST)):
            if request.accepts("text/html"):
                return HttpResponse(inbound.BAD_TEXT_MESSAGE, status=400, content_type="text/plain; charset=utf-8")
            return JsonResponse({"ok": False, "code": "bad_text", "message": inbound.BAD_TEXT_MESSAGE}, status=400)
        return self.get_response(request)
