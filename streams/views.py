"""Pages: home (discovery), the room page, notifications, and the host studio."""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from streams import fanout, selectors, services
from streams.forms import RoomForm
from streams.models import Room, ShelfItem
from streams.services import RoomError


def home(request):
    live = list(selectors.rooms_live()[:24])
    for room in live:
        room.viewers_now = fanout.viewers_total(room_id=room.pk)
    live.sort(key=lambda r: (-(r.viewers_now or 0), -(r.peak_viewers or 0)))
    return render(
        request,
        "streams/home.html",
        {"live": live, "upcoming": selectors.rooms_upcoming()[:24], "replays": selectors.rooms_replays()[:24]},
    )


def room(request, pk: int):
    room = get_object_or_404(Room.objects.select_related("host__user"), pk=pk)
    user = request.user if request.user.is_authenticated else None
    role = selectors.room_role(room=room, user=user)
    return render(
        request,
        "streams/room.html",
        {
            "room": room,
            "role": role,
            "following": selectors.is_following(user=user, host_id=room.host_id),
            "followers": selectors.followers_count(host_id=room.host_id),
            "shelf": list(selectors.shelf_items(room_id=room.pk)),
            "chat_max": services.CHAT_MAX_LENGTH,
        },
    )


@login_required
def notifications(request):
    if request.method == "POST":
        services.notifications_mark_read(user=request.user)
        return redirect("streams:notifications")
    items = selectors.notifications_for(user=request.user)
    return render(request, "streams/notifications.html", {"items": items})


# --- studio ------------------------------------------------------------------------------


def host_required(view):
    @wraps(view)
    @login_required
    def wrapper(request, *args, **kwargs):
        if not request.user.is_host:
            messages.info(request, "The studio is for approved hosts. Apply below and we will review it.")
            return redirect("accounts:host_apply")
        return view(request, *args, **kwargs)

    return wrapper


def _my_room(request, pk: int) -> Room:
    room = selectors.room_get(room_id=pk)
    if room is None or room.host.user_id != request.user.pk:
        raise Http404("No such room in your studio.")
    return room


@host_required
def studio(request):
    host = request.user.host_profile
    if request.method == "POST":
        form = RoomForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                room = services.room_create(
                    host=host, title=form.cleaned_data["title"], description=form.cleaned_data["description"],
                    scheduled_start=form.cleaned_data["scheduled_start"], cover=form.cleaned_data.get("cover"),
                )  # fmt: skip
            except RoomError as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, "Room scheduled. Add products to its shelf, then go live.")
                return redirect("streams:studio_room", pk=room.pk)
    else:
        form = RoomForm()
    return render(request, "streams/studio.html", {"form": form, "rooms": selectors.rooms_of_host(host=host)})


@host_required
def studio_room(request, pk: int):
    room = _my_room(request, pk)
    return render(
        request,
        "streams/studio_room.html",
        {
            "room": room,
            "shelf": list(selectors.shelf_items(room_id=room.pk)),
            "moderators": list(selectors.room_moderators(room=room)),
            "bans": list(selectors.room_bans(room=room)),
            "mutes": list(selectors.room_mutes_active(room=room)),
            "rtmp_url": settings.RTMP_URL,
            "edit_form": RoomForm(instance=room),
        },
    )


ACTIONS = {}


def action(name):
    def decorator(func):
        ACTIONS[name] = func
        return func

    return decorator


@action("go_live")
def _go_live(request, room):
    services.room_go_live(room=room, by=request.user)
    return "You are live. Followers have been told."


@action("end")
def _end(request, room):
    services.room_end(room=room, by=request.user)
    return "The stream has ended."


@action("rotate_key")
def _rotate(request, room):
    services.room_rotate_stream_key(room=room)
    return "New stream key made. Update it in OBS before you go live."


@action("edit")
def _edit(request, room):
    form = RoomForm(request.POST, request.FILES, instance=Room.objects.get(pk=room.pk))
    if not form.is_valid():
        raise RoomError("invalid", "; ".join(e for errors in form.errors.values() for e in errors))
    services.room_update(
        room=room, title=form.cleaned_data["title"], description=form.cleaned_data["description"],
        scheduled_start=form.cleaned_data["scheduled_start"], cover=request.FILES.get("cover"),
    )  # fmt: skip
    return "Room details saved."


def _int_field(request, name: str) -> int:
    try:
        return int(request.POST.get(name, ""))
    except ValueError:
        raise RoomError("invalid", f"{name.replace('_', ' ').capitalize()} must be a whole number.")


@action("shelf_add")
def _shelf_add(request, room):
    services.shelf_add(
        room=room, product_id=_int_field(request, "product_id"), live_price=request.POST.get("live_price"),
        per_user_limit=_int_field(request, "per_user_limit") if request.POST.get("per_user_limit") else 5,
        by=request.user,
    )  # fmt: skip
    return "Added to the shelf."


def _item(request, room) -> ShelfItem:
    item = ShelfItem.objects.filter(room=room, pk=_int_field(request, "item_id"), is_active=True).first()
    if item is None:
        raise RoomError("not_found", "That product is not on this shelf.")
    return item


@action("shelf_update")
def _shelf_update(request, room):
    services.shelf_update(
        item=_item(request, room), by=request.user, live_price=request.POST.get("live_price") or None,
        position=_int_field(request, "position") if request.POST.get("position") else None,
        per_user_limit=_int_field(request, "per_user_limit") if request.POST.get("per_user_limit") else None,
    )  # fmt: skip
    return "Shelf updated."


@action("shelf_remove")
def _shelf_remove(request, room):
    services.shelf_remove(item=_item(request, room), by=request.user)
    return "Removed from the shelf."


@action("pin")
def _pin(request, room):
    services.room_pin(room=room, item_id=_int_field(request, "item_id"), by=request.user)
    return "Pinned."


@action("unpin")
def _unpin(request, room):
    services.room_unpin(room=room, by=request.user)
    return "Unpinned."


@action("mod_add")
def _mod_add(request, room):
    mod = services.moderator_add(room=room, username=request.POST.get("username", ""), by=request.user)
    return f"{mod.user.username} can now pin and moderate."


@action("mod_remove")
def _mod_remove(request, room):
    services.moderator_remove(room=room, user_id=_int_field(request, "user_id"), by=request.user)
    return "Moderator removed. Their rights ended at once."


@action("unban")
def _unban(request, room):
    services.user_unban(room=room, user_id=_int_field(request, "user_id"), by=request.user)
    return "Ban lifted."


@action("unmute")
def _unmute(request, room):
    services.user_unmute(room=room, user_id=_int_field(request, "user_id"), by=request.user)
    return "Mute lifted."


@action("slow_mode")
def _slow(request, room):
    services.room_set_slow_mode(room=room, seconds=_int_field(request, "seconds"), by=request.user)
    return "Slow mode updated."


@host_required
@require_POST
def studio_action(request, pk: int, op: str):
    room = _my_room(request, pk)
    handler = ACTIONS.get(op)
    if handler is None:
        return HttpResponseBadRequest("Unknown action.")
    try:
        text = handler(request, room)
    except RoomError as exc:
        if request.headers.get("Accept") == "application/json":
            return JsonResponse({"ok": False, "code": exc.code, "message": exc.message}, status=400)
        messages.error(request, exc.message)
    else:
        if request.headers.get("Accept") == "application/json":
            return JsonResponse({"ok": True, "message": text})
        messages.success(request, text)
    back = request.POST.get("back", "")
    return redirect(reverse("streams:studio_room", args=[room.pk]) + (f"#{back}" if back.isidentifier() else ""))


@host_required
@require_GET
def studio_products(request, pk: int):
    """Shelf builder search: sellable self-operated products (catalog.selectors.product_search)."""
    room = _my_room(request, pk)
    from catalog.selectors import product_search

    try:
        page = int(request.GET.get("page", 1))
    except ValueError:
        page = 1
    results = product_search(query=request.GET.get("q", "")[:100], category_id=None, page=page, page_size=12)
    on_shelf = set(room.shelf.filter(is_active=True).values_list("product_id", flat=True))
    return JsonResponse(
        {
            "results": [
                {
                    "id": p.pk, "title": p.title, "brand": p.brand, "list_price": str(p.list_price),
                    "floor": str(p.live_price_floor), "stock": p.retailer_stock, "on_shelf": p.pk in on_shelf,
                    "image": (p.images.all()[0].url if p.images.all() else ""),
                }
                for p in results
            ],
            "page": results.number,
            "pages": results.paginator.num_pages,
        }
    )  # fmt: skip


@host_required
@require_GET
def studio_stats(request, pk: int):
    room = _my_room(request, pk)
    room.refresh_from_db(fields=["peak_viewers", "likes", "status"])
    viewers = fanout.viewers_total(room_id=room.pk)
    return JsonResponse(
        {
            "status": room.status,
            "viewers": viewers,  # None while Redis is down
            "peak_viewers": max(room.peak_viewers, viewers or 0),
            "likes": fanout.likes_get(room_id=room.pk, base=room.likes),
            "chat_per_minute": selectors.chat_per_minute(room_id=room.pk),
        }
    )
