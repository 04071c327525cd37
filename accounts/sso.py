"""Single sign-on with OpenID Connect, through django-allauth's provider (README, "Single
sign-on").

allauth discovers the provider's endpoints from its issuer, checks the state, sends PKCE and
verifies the ID token. Here Webchat adds what it decides itself: a nonce bound to the
sign-in's state, which accounts may sign in and with which role (from a claim, refreshed at
every sign-in), when an existing account is linked by its email address, and the pages
that say why a sign-in was refused or failed.
"""

import logging
import secrets
from typing import Any

from allauth.account.adapter import get_adapter as get_account_adapter
from allauth.account.authentication import get_authentication_records
from allauth.account.utils import user_username
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter, get_adapter
from allauth.socialaccount.helpers import render_authentication_error
from allauth.socialaccount.models import SocialLogin
from allauth.socialaccount.providers.base.constants import AuthError
from allauth.socialaccount.providers.openid_connect.provider import OpenIDConnectProvider
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.http import urlencode
from django.utils.translation import gettext
from requests import RequestException

from accounts import roles

logger = logging.getLogger(__name__)

PROVIDER_ID = "sso"
# Highest first: someone in the groups of several roles gets the highest.
ROLES_BY_RANK = (roles.ADMIN, roles.REVIEWER, roles.MEMBER)


def sso_enabled() -> bool:
    return bool(settings.WEBCHAT_OIDC_ISSUER)


def sso_login_url() -> str:
    return reverse("openid_connect_login", kwargs={"provider_id": PROVIDER_ID})


def role_for_claims(claims: dict[str, Any]) -> str | None:
    """The role the identity provider's roles claim grants, or None when it grants none.
    The claim is a list of group names (or one name); without a roles claim configured,
    everyone is a member."""
    if not settings.WEBCHAT_OIDC_ROLES_CLAIM:
        return roles.MEMBER
    value = claims.get(settings.WEBCHAT_OIDC_ROLES_CLAIM) or []
    groups = {value} if isinstance(value, str) else {str(item) for item in value}
    for role in ROLES_BY_RANK:
        if groups.intersection(settings.WEBCHAT_OIDC_ROLE_GROUPS[role]):
            return role
    return None


def user_role_set(*, user: AbstractBaseUser, role: str) -> None:
    """Give the user this role, and only this one of the three, as an invitation would."""
    user.groups.remove(*Group.objects.filter(name__in=ROLES_BY_RANK).exclude(name=role))
    user.groups.add(Group.objects.get(name=role))
    is_staff = role in roles.STAFF_ROLES or user.is_superuser
    if user.is_staff != is_staff:
        user.is_staff = is_staff
        user.save(update_fields=["is_staff"])


def _claims(sociallogin: SocialLogin) -> dict[str, Any]:
    """The ID token's claims, with the userinfo endpoint's over them."""
    data = sociallogin.account.extra_data
    return {**data.get("id_token", {}), **data.get("userinfo", {})}


def _refused(request: HttpRequest, reason: str) -> ImmediateHttpResponse:
    context = {"reason": reason, "provider_name": settings.WEBCHAT_OIDC_NAME}
    response = render(request, "accounts/sso_refused.html", context, status=403)
    return ImmediateHttpResponse(response)


class SingleSignOnProvider(OpenIDConnectProvider):
    """allauth's OpenID Connect provider, sending a nonce that the callback checks, and
    answering with a clear page when the provider cannot be reached."""

    def redirect(self, request: HttpRequest, process, next_url=None, data=None, **kwargs):
        nonce = secrets.token_urlsafe(32)
        auth_params = kwargs.pop("auth_params", None)
        auth_params = {**(self.get_auth_params() if auth_params is None else auth_params)}
        auth_params["nonce"] = nonce
        try:
            # The nonce is kept in the sign-in's state, which only its callback reads.
            return super().redirect(
                request, process, next_url, data, auth_params=auth_params, nonce=nonce, **kwargs
            )
        except RequestException as error:
            return render_authentication_error(request, self, exception=error)

    def end_session_url(self, request: HttpRequest) -> str | None:
        """Where to send the browser to sign out at the provider too, if it says."""
        try:
            endpoint = self.get_oauth2_adapter(request).openid_config.get("end_session_endpoint")
        except (RequestException, ValueError):
            logger.warning("The identity provider's discovery document could not be read.")
            return None
        if not endpoint:
            return None
        query = {
            "client_id": self.app.client_id,
            "post_logout_redirect_uri": request.build_absolute_uri(reverse("login")),
        }
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"


class SingleSignOnAdapter(DefaultSocialAccountAdapter):
    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """Runs after the provider's answer is verified, before anyone is signed in: every
        refusal here leaves no session."""
        id_token_nonce = sociallogin.account.extra_data.get("id_token", {}).get("nonce", "")
        if not constant_time_compare(id_token_nonce, sociallogin.state.get("nonce", "")):
            logger.warning("A single sign-on answer came back with the wrong nonce.")
            raise _refused(request, gettext("The identity provider's answer was not valid."))
        role = role_for_claims(_claims(sociallogin))
        if role is None:
            raise _refused(request, gettext("Your account is not in a group that may use Webchat."))
        if not sociallogin.is_existing:
            self._link_by_email(request, sociallogin)
        if sociallogin.is_existing:
            if not sociallogin.user.is_active:
                raise _refused(request, gettext("Your Webchat account is inactive."))
            self._role_refresh(sociallogin.user, role)

    def _link_by_email(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """An account with the same email address is linked when the admin allows it and
        the provider says the address is verified; otherwise the sign-in is refused,
        rather than making a second account for the same person."""
        claims = _claims(sociallogin)
        email = claims.get("email") or ""
        if not email:
            return
        users = list(get_user_model().objects.filter(email__iexact=email)[:2])
        if not users:
            return
        if len(users) > 1:
            raise _refused(
                request,
                gettext(
                    "Several Webchat accounts have your email address. Ask an administrator "
                    "to give it to only one of them."
                ),
            )
        user = users[0]
        if not settings.WEBCHAT_OIDC_LINK_BY_EMAIL:
            raise _refused(
                request,
                gettext(
                    "A Webchat account with your email address already exists. Sign in with "
                    "its password, or ask an administrator to link it to single sign-on."
                ),
            )
        if claims.get("email_verified") is not True:
            raise _refused(
                request,
                gettext(
                    "A Webchat account with your email address already exists, but the "
                    "identity provider does not say the address is verified, so it cannot "
                    "be linked."
                ),
            )
        if not user.is_active:
            raise _refused(request, gettext("Your Webchat account is inactive."))
        sociallogin.connect(request, user)

    def _role_refresh(self, user: AbstractBaseUser, role: str) -> None:
        # Without a roles claim, roles are the admin's to give, after the first sign-in.
        if settings.WEBCHAT_OIDC_ROLES_CLAIM:
            user_role_set(user=user, role=role)

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        return True

    def populate_user(self, request: HttpRequest, sociallogin: SocialLogin, data):
        user = super().populate_user(request, sociallogin, data)
        # The provider's username may be someone else's here: it is never used to link.
        user_username(
            user,
            get_account_adapter().generate_unique_username(
                [data.get("username"), data.get("email"), data.get("first_name"), "user"]
            ),
        )
        return user

    def save_user(self, request: HttpRequest, sociallogin: SocialLogin, form=None):
        user = super().save_user(request, sociallogin, form)
        user_role_set(user=user, role=role_for_claims(_claims(sociallogin)) or roles.MEMBER)
        return user

    def on_authentication_error(
        self, request: HttpRequest, provider, error=None, exception=None, extra_context=None
    ) -> None:
        """Every failure gets Webchat's page saying what happened, never a 500."""
        if error == AuthError.CANCELLED:
            reason, status = gettext("Signing in was cancelled."), 400
        elif isinstance(exception, RequestException):
            logger.warning("The identity provider could not be reached: %s", exception)
            reason = gettext("The identity provider could not be reached. Try again later.")
            status = 502
        else:
            logger.warning("A single sign-on failed: %s %r", error, exception)
            reason = gettext("Signing in did not complete. Please try again.")
            status = 400
        context = {"reason": reason, "provider_name": settings.WEBCHAT_OIDC_NAME}
        raise ImmediateHttpResponse(
            render(request, "accounts/sso_error.html", context, status=status)
        )


def signed_in_with_sso(request: HttpRequest) -> bool:
    return any(
        record.get("method") == "socialaccount" and record.get("provider") == PROVIDER_ID
        for record in get_authentication_records(request, request.user)
    )


def sso_sign_out_redirect(request: HttpRequest, signed_in_with_it: bool) -> HttpResponse | None:
    """After Webchat's session has ended, the provider's end-session page, if it has one."""
    if not (sso_enabled() and signed_in_with_it):
        return None
    provider = get_adapter(request).get_provider(request, PROVIDER_ID)
    url = provider.end_session_url(request)
    return HttpResponseRedirect(url) if url else None
