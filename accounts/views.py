from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services, throttle
from accounts.forms import AddressForm, HostApplicationForm, SignupForm
from accounts.models import HostProfile


def _safe_next(request) -> str | None:
    """The `next` page to go back to, only if it is on this site."""
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return None


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("streams:home")
    if request.method == "POST" and not throttle.signup_allowed(request, request.POST.get("username", "")):
        form = SignupForm()
        context = {"form": form, "throttled": throttle.signup_refused_message()}
        return render(request, "accounts/signup.html", context, status=429)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = services.user_signup(
            username=form.cleaned_data["username"],
            password=form.cleaned_data["password1"],
            email=form.cleaned_data["email"],
            display_name=form.cleaned_data["display_name"],
        )
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.public_name}! Your account is ready.")
        return redirect("streams:home")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
def address_list(request):
    return render(request, "accounts/address_list.html", {"addresses": selectors.address_list(user=request.user)})


@login_required
@require_http_methods(["GET", "POST"])
def address_create(request):
    form = AddressForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if k != "make_default"}
        try:
            services.address_create(user=request.user, make_default=form.cleaned_data["make_default"], **data)
        except services.AddressLimitReached as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Address saved.")
            return redirect(_safe_next(request) or "accounts:addresses")
    return render(request, "accounts/address_form.html", {"form": form, "creating": True})


@login_required
@require_http_methods(["GET", "POST"])
def address_edit(request, pk: int):
    address = selectors.address_get(user=request.user, address_id=pk)
    form = AddressForm(request.POST or None, instance=address, initial={"make_default": address.is_default})
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if k != "make_default"}
        services.address_update(address=address, make_default=form.cleaned_data["make_default"], **data)
        messages.success(request, "Address updated.")
        return redirect("accounts:addresses")
    return render(request, "accounts/address_form.html", {"form": form, "address": address, "creating": False})


@login_required
@require_POST
def address_delete(request, pk: int):
    address = selectors.address_get(user=request.user, address_id=pk)
    services.address_delete(address=address)
    messages.success(request, "Address removed.")
    return redirect("accounts:addresses")


@login_required
@require_POST
def address_make_default(request, pk: int):
    address = selectors.address_get(user=request.user, address_id=pk)
    services.address_update(address=address, make_default=True)
    messages.success(request, "Default address changed.")
    return redirect("accounts:addresses")


@login_required
@require_http_methods(["GET", "POST"])
def host_apply(request):
    profile = HostProfile.objects.filter(user=request.user).first()
    form = HostApplicationForm(request.POST or None, instance=profile)
    if request.method == "POST" and form.is_valid():
        profile = services.host_apply(
            user=request.user, handle=form.cleaned_data["handle"], bio=form.cleaned_data["bio"]
        )
        messages.success(request, "Thanks! Staff will review your application shortly.")
        return redirect("accounts:host_apply")
    return render(request, "accounts/host_apply.html", {"form": form, "profile": profile})
