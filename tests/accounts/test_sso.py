"""Single sign-on's decisions without a browser: settings, role mapping, who may sign in and
which account they get, the sign-in page, a provider that is down, signing out.

The whole flow, with a real provider, is in test_browser_sso.py."""

import socket
from collections.abc import Iterator

import pytest
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.models import SocialAccount, SocialLogin
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts import roles, sso
from tests.conftest import PASSWORD
from tests.factories import UserFactory, user_with_role
from tests.test_settings import _load_settings

ROLE_GROUPS = {"Member": ["chat"], "Reviewer": ["reviewers"], "Admin": ["webchat-admins"]}


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port held but not listening: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def sso_settings(settings, closed_port):
    """Single sign-on configured, with roles from the groups claim; the issuer is down
    (every test here that talks to it expects that)."""
    settings.WEBCHAT_OIDC_ISSUER = f"http://127.0.0.1:{closed_port}"
    settings.WEBCHAT_OIDC_NAME = "Example SSO"
    settings.WEBCHAT_OIDC_ROLES_CLAIM = "groups"
    settings.WEBCHAT_OIDC_ROLE_GROUPS = ROLE_GROUPS
    settings.WEBCHAT_OIDC_LINK_BY_EMAIL = False
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            **settings.SOCIALACCOUNT_PROVIDERS["openid_connect"],
            "APPS": [
                {
                    "provider_id": "sso",
                    "name": "Example SSO",
                    "client_id": "webchat",
                    "secret": "not-secret",
                    "settings": {"server_url": settings.WEBCHAT_OIDC_ISSUER},
                }
            ],
        }
    }
    return settings


@pytest.fixture
def setup_done(db) -> None:
    """A user exists, so pages are not sent to the first-run setup."""
    UserFactory()


# Settings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"WEBCHAT_OIDC_ISSUER": "https://sso.example.com"},
            "WEBCHAT_OIDC_ISSUER needs WEBCHAT_OIDC_CLIENT_ID",
        ),
        (
            {"WEBCHAT_OIDC_ISSUER": "sso.example.com", "WEBCHAT_OIDC_CLIENT_ID": "webchat"},
            "WEBCHAT_OIDC_ISSUER must be a URL",
        ),
        ({"WEBCHAT_PASSWORD_LOGIN": "false"}, "WEBCHAT_PASSWORD_LOGIN=false needs"),
        ({"WEBCHAT_OIDC_ROLES_CLAIM": "groups"}, "WEBCHAT_OIDC_ROLES_CLAIM needs at least one"),
        ({"WEBCHAT_OIDC_LINK_BY_EMAIL": "sometimes"}, "must be true or false"),
    ],
)
def test_bad_single_sign_on_settings_stop_the_server(env, message):
    result = _load_settings(DEBUG="true", **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_the_issuers_origin_may_receive_the_sign_in_forms():
    result = _load_settings(
        "s.WEBCHAT_CONTENT_SECURITY_POLICY, s.SOCIALACCOUNT_PROVIDERS",
        DEBUG="true",
        WEBCHAT_OIDC_ISSUER="https://login.example.com/realms/staff/",
        WEBCHAT_OIDC_CLIENT_ID="webchat",
    )
    assert result.returncode == 0, result.stderr
    assert "form-action 'self' https://login.example.com;" in result.stdout
    assert "'server_url': 'https://login.example.com/realms/staff'" in result.stdout
    assert "'scope': ['openid', 'email', 'profile']" in result.stdout


def test_without_an_issuer_nothing_changes(client, setup_done):
    page = client.get(reverse("login"))
    assert b"id_password" in page.content
    assert b"Sign in with" not in page.content
    response = client.post(reverse("openid_connect_login", kwargs={"provider_id": "sso"}))
    assert response.status_code == 404


# Roles


@pytest.mark.parametrize(
    ("groups", "role"),
    [
        (["chat"], roles.MEMBER),
        (["chat", "reviewers"], roles.REVIEWER),
        (["reviewers", "webchat-admins", "chat"], roles.ADMIN),
        ("webchat-admins", roles.ADMIN),  # one group, as a string
        (["sales"], None),
        ([], None),
        (None, None),
    ],
)
def test_the_highest_role_of_the_groups_is_given(sso_settings, groups, role):
    assert sso.role_for_claims({"groups": groups}) == role


def test_without_a_roles_claim_everyone_is_a_member(sso_settings):
    sso_settings.WEBCHAT_OIDC_ROLES_CLAIM = ""
    assert sso.role_for_claims({"groups": ["sales"]}) == roles.MEMBER


def test_setting_a_role_replaces_the_others_and_sets_staff(db):
    user = user_with_role(roles.ADMIN)
    sso.user_role_set(user=user, role=roles.MEMBER)
    user.refresh_from_db()
    assert list(user.groups.values_list("name", flat=True)) == [roles.MEMBER]
    assert not user.is_staff
    sso.user_role_set(user=user, role=roles.REVIEWER)
    user.refresh_from_db()
    assert list(user.groups.values_list("name", flat=True)) == [roles.REVIEWER]
    assert user.is_staff


# Who signs in, as whom


def _sociallogin(*, sub: str = "sub-1", nonce: str = "n0nce", user=None, **claims) -> SocialLogin:
    account = SocialAccount(
        provider="sso", uid=sub, extra_data={"id_token": {"sub": sub, "nonce": nonce, **claims}}
    )
    if user is not None:
        account.user = user
    login = SocialLogin(account=account, user=user or get_user_model()())
    login.state = {"nonce": "n0nce", "process": "login"}
    return login


def _request():
    request = RequestFactory().get("/accounts/oidc/sso/login/callback/")
    request.session = SessionStore()
    return request


def _refusal(sociallogin: SocialLogin) -> str:
    with pytest.raises(ImmediateHttpResponse) as refused:
        sso.SingleSignOnAdapter().pre_social_login(_request(), sociallogin)
    assert refused.value.response.status_code == 403
    return refused.value.response.content.decode()


def test_a_wrong_nonce_is_refused(sso_settings, db):
    assert "answer was not valid" in _refusal(_sociallogin(nonce="forged", groups=["chat"]))


def test_someone_in_no_allowed_group_is_refused(sso_settings, db):
    page = _refusal(_sociallogin(groups=["sales"]))
    assert "not in a group that may use Webchat" in page


def test_an_account_with_the_same_email_is_not_linked_unless_allowed(sso_settings, db):
    UserFactory(email="Frank@example.com")
    login = _sociallogin(email="frank@example.com", email_verified=True, groups=["chat"])
    assert "already exists" in _refusal(login)
    assert not SocialAccount.objects.exists()


def test_an_email_address_of_several_accounts_links_none(sso_settings, db):
    sso_settings.WEBCHAT_OIDC_LINK_BY_EMAIL = True
    UserFactory(email="frank@example.com")
    UserFactory(email="FRANK@example.com")
    login = _sociallogin(email="frank@example.com", email_verified=True, groups=["chat"])
    assert "Several Webchat accounts have your email address" in _refusal(login)
    assert not SocialAccount.objects.exists()


def test_an_unverified_email_is_never_linked(sso_settings, db):
    sso_settings.WEBCHAT_OIDC_LINK_BY_EMAIL = True
    UserFactory(email="frank@example.com")
    login = _sociallogin(email="frank@example.com", email_verified=False, groups=["chat"])
    assert "does not say the address is verified" in _refusal(login)
    assert not SocialAccount.objects.exists()


def test_a_verified_email_links_the_account_where_allowed_with_its_role(sso_settings, db):
    sso_settings.WEBCHAT_OIDC_LINK_BY_EMAIL = True
    frank = user_with_role(roles.MEMBER, email="frank@example.com")
    login = _sociallogin(email="frank@example.com", email_verified=True, groups=["reviewers"])
    sso.SingleSignOnAdapter().pre_social_login(_request(), login)
    assert SocialAccount.objects.get().user == frank
    frank.refresh_from_db()
    assert list(frank.groups.values_list("name", flat=True)) == [roles.REVIEWER]
    assert frank.is_staff


def test_an_inactive_account_is_refused(sso_settings, db):
    user = user_with_role(roles.MEMBER, is_active=False)
    login = _sociallogin(user=user, groups=["chat"])
    assert "inactive" in _refusal(login)


def test_a_returning_user_gets_the_role_of_their_groups_now(sso_settings, db):
    user = user_with_role(roles.ADMIN)
    sso.SingleSignOnAdapter().pre_social_login(_request(), _sociallogin(user=user, groups=["chat"]))
    user.refresh_from_db()
    assert list(user.groups.values_list("name", flat=True)) == [roles.MEMBER]
    assert not user.is_staff


# The sign-in page


def test_the_sign_in_page_offers_single_sign_on_beside_the_password(
    sso_settings, client, setup_done
):
    page = client.get(reverse("login")).content.decode()
    assert "Sign in with Example SSO" in page
    assert 'action="/accounts/oidc/sso/login/"' in page
    assert "id_password" in page


def test_with_password_sign_in_off_the_page_offers_only_single_sign_on(
    sso_settings, client, setup_done
):
    sso_settings.WEBCHAT_PASSWORD_LOGIN = False
    page = client.get(reverse("login")).content.decode()
    assert "Sign in with Example SSO" in page
    assert "id_password" not in page
    assert "id_password" in client.get(reverse("login") + "?password=1").content.decode()


def test_with_password_sign_in_off_only_a_superuser_signs_in_with_a_password(
    sso_settings, client, db
):
    sso_settings.WEBCHAT_PASSWORD_LOGIN = False
    user_with_role(roles.ADMIN, username="staffer")  # an Admin, but not a superuser
    UserFactory(username="root", is_superuser=True, is_staff=True)
    refused = client.post(reverse("login"), {"username": "staffer", "password": PASSWORD})
    assert refused.status_code == 200
    assert "_auth_user_id" not in client.session
    assert "didn't match" in refused.content.decode()
    signed_in = client.post(
        reverse("login") + "?password=1", {"username": "root", "password": PASSWORD}
    )
    assert signed_in.status_code == 302
    assert client.session["_auth_user_id"] == str(get_user_model().objects.get(username="root").pk)


def test_opening_the_sign_on_link_asks_before_leaving_for_the_provider(
    sso_settings, client, setup_done
):
    page = client.get(reverse("openid_connect_login", kwargs={"provider_id": "sso"}))
    assert page.status_code == 200
    assert "You are about to leave Webchat to sign in with Example SSO." in page.content.decode()
    assert 'method="post"' in page.content.decode()


# A provider that is down


def test_a_provider_that_is_down_gets_a_clear_page(sso_settings, client, setup_done):
    response = client.post(reverse("openid_connect_login", kwargs={"provider_id": "sso"}))
    assert response.status_code == 502
    assert "The identity provider could not be reached" in response.content.decode()
    assert "Signing in with Example SSO failed" in response.content.decode()


def test_a_callback_without_its_state_gets_a_clear_page(sso_settings, client, setup_done):
    response = client.get(
        reverse("openid_connect_callback", kwargs={"provider_id": "sso"}),
        {"code": "a-code", "state": "unknown"},
    )
    assert response.status_code == 400
    assert "Signing in did not complete" in response.content.decode()


# Signing out


def test_signing_out_of_a_single_sign_on_session_with_the_provider_down_ends_at_sign_in(
    sso_settings, client, db
):
    user = UserFactory()
    client.force_login(user)
    session = client.session
    session["account_authentication_methods_user"] = str(user.pk)
    session["account_authentication_methods"] = [{"method": "socialaccount", "provider": "sso"}]
    session.save()
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    assert response["Location"] == reverse("login")
    assert "_auth_user_id" not in client.session


def test_the_admin_shows_a_users_identity_provider_links(db):
    admin = UserFactory(is_superuser=True, is_staff=True)
    user = UserFactory()
    SocialAccount.objects.create(user=user, provider="sso", uid="sub-123456")
    client = Client()
    client.force_login(admin)
    page = client.get(reverse("admin:auth_user_change", args=[user.pk])).content.decode()
    assert "Identity provider links" in page
    assert "sub-123456" in page
