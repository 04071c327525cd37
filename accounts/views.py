"""Account pages: the first admin's setup, usage and limits, invitations, signing up. Off
the chat path, so sync."""

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import LogoutView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods

from accounts import access, limits, login_throttle, registration, setup, sso
from accounts.forms import AccountForm, FirstAdminForm


@require_GET
def usage(request: HttpRequest) -> HttpResponse:
    usage = limits.usage_for(request.user.pk)
    context = {
        "usage": usage,
        "periods": [(gettext("Today"), usage.today), (gettext("This month"), usage.month)],
        "models": access.allowed_models(request.user),
    }
    return render(request, "accounts/usage.html", context)


@login_not_required
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = registration.invitation_usable(token)
    except registration.InvitationUnusable as unusable:
        return render(request, "accounts/unusable_invitation.html", {"error": unusable}, status=410)
    form = AccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = registration.invitation_accept(token, form)
        except registration.InvitationUnusable as unusable:
            context = {"error": unusable}
            return render(request, "accounts/unusable_invitation.html", context, status=410)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("conversations:index")
    return render(request, "accounts/invitation.html", {"form": form, "invitation": invitation})


@login_not_required
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if not settings.WEBCHAT_SELF_SIGNUP:
        raise Http404("Signing up is turned off.")
    form = AccountForm(request.POST or None)
    if request.method == "POST":
        address = login_throttle.client_address(request)
        if until := login_throttle.signup_lockout_until(address):
            context = {
                "form": AccountForm(),
                "locked_out": login_throttle.signup_lockout_message(until),
            }
            return render(request, "accounts/signup.html", context, status=429)
        login_throttle.signup_attempt_record(address)
        if form.is_valid():
            registration.signup(form)
            return render(request, "accounts/signup_done.html")
    return render(request, "accounts/signup.html", {"form": form})


@login_not_required
@require_http_methods(["GET", "POST"])
def first_admin_setup(request: HttpRequest) -> HttpResponse:
    """On a fresh install, whoever holds the setup token creates the first admin account."""
    if not setup.setup_is_open():
        return render(request, "accounts/setup_closed.html", status=410)
    form = FirstAdminForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = setup.first_admin_create(form=form)
        except setup.SetupClosed:
            return render(request, "accounts/setup_closed.html", status=410)
        login(request, user)
        return redirect("conversations:index")
    return render(request, "accounts/setup.html", {"form": form})


class SignOutView(LogoutView):
    """Django's sign-out (which closes the session's sockets, accounts/signals.py); a session
    signed in with single sign-on then goes on to sign out at the identity provider, when
    it offers that."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        signed_in_with_sso = sso.signed_in_with_sso(request)
        response = super().post(request, *args, **kwargs)
        return sso.sso_sign_out_redirect(request, signed_in_with_sso) or response
