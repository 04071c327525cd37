"""Single sign-on end to end: Chromium, a live Webchat and a real OpenID provider
(panva's oidc-provider, tests/oidc_server.py), all on 127.0.0.1."""

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser_fixtures import CHROMIUM, PASSWORD
from tests.live_server import LiveServer
from tests.oidc_server import OIDCProvider

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]
# Counts the page's socket openings; a reload starts the count again.
COUNT_SOCKET_OPENINGS = (
    "window.socketOpenings = 0;"
    "document.addEventListener('htmx:wsOpen', () => { window.socketOpenings += 1; });"
)

SCOPES = "openid email profile groups"
ROLES = {
    "WEBCHAT_OIDC_ROLES_CLAIM": "groups",
    "WEBCHAT_OIDC_ROLE_MEMBER": "chat",
    "WEBCHAT_OIDC_ROLE_REVIEWER": "reviewers",
    "WEBCHAT_OIDC_ROLE_ADMIN": "webchat-admins",
}


@pytest.fixture(scope="module")
def sso(tmp_path_factory, fake_upstream_server) -> Iterator[tuple]:
    """The provider, a Webchat that signs in with it and refuses to link accounts by email,
    and one that links them and has password sign-in off."""
    folder = tmp_path_factory.mktemp("sso")
    base = {
        "WEBCHAT_API_BASE": fake_upstream_server.base_url,
        "WEBCHAT_API_KEY": "test-key-not-secret",
        "WEBCHAT_MODELS": "fake-model",
        "WEBCHAT_OIDC_NAME": "Example SSO",
        "WEBCHAT_OIDC_SCOPES": SCOPES,
        **ROLES,
    }
    (folder / "refusing").mkdir()
    (folder / "linking").mkdir()
    refusing = LiveServer(folder / "refusing", env={**base, "WEBCHAT_OIDC_CLIENT_ID": "refusing"})
    linking = LiveServer(
        folder / "linking",
        env={
            **base,
            "WEBCHAT_OIDC_CLIENT_ID": "linking",
            "WEBCHAT_OIDC_LINK_BY_EMAIL": "true",
            "WEBCHAT_PASSWORD_LOGIN": "false",
        },
    )
    provider = OIDCProvider(folder)
    for server in (refusing, linking):
        secret = f"{server.env['WEBCHAT_OIDC_CLIENT_ID']}-secret"
        provider.client_add(
            client_id=server.env["WEBCHAT_OIDC_CLIENT_ID"], secret=secret, webchat_url=server.url
        )
        server.env["WEBCHAT_OIDC_CLIENT_SECRET"] = secret
    provider.start()
    try:
        for server in (refusing, linking):
            server.env["WEBCHAT_OIDC_ISSUER"] = provider.issuer
            server.start()
            # An administrator exists, so the first-run setup is over.
            server.manage(
                "shell",
                "-c",
                "from django.contrib.auth.models import User;"
                f"User.objects.create_superuser('root', password={PASSWORD!r})",
            )
        yield provider, refusing, linking
    finally:
        for server in (refusing, linking):
            server.stop()
        provider.stop()


@contextmanager
def fresh_page(browser) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == []


def provider_sign_in(
    page: Page, server: LiveServer, provider: OIDCProvider, account: str, start: str = "/"
):
    """From Webchat's sign-in page (on the way to ``start``), through the provider's, back
    to Webchat."""
    page.goto(f"{server.url}{start}")
    page.wait_for_url(f"{server.url}/accounts/login/**")
    page.get_by_role("button", name="Sign in with Example SSO").click()
    page.wait_for_url(f"{provider.issuer}/interaction/**")
    page.fill("#login", account)
    page.get_by_role("button", name="Continue").click()


def account_of(server: LiveServer, sub: str) -> dict:
    """The Webchat account linked to the provider's ``sub``: name, roles, staff, links."""
    output = server.manage(
        "shell",
        "-c",
        "import json;"
        "from allauth.socialaccount.models import SocialAccount;"
        f"user = SocialAccount.objects.get(uid={sub!r}).user;"
        "print(json.dumps({'username': user.username, 'pk': user.pk, 'is_staff': user.is_staff,"
        "'roles': sorted(user.groups.values_list('name', flat=True)),"
        "'links': user.socialaccount_set.count()}))",
    )
    return json.loads(output.splitlines()[-1])


def signed_out(page: Page, server: LiveServer) -> bool:
    page.goto(f"{server.url}/")
    return page.url.startswith(f"{server.url}/accounts/login/")


def test_the_first_sign_in_makes_the_account_with_the_role_of_its_groups(browser, sso):
    provider, server, _ = sso
    provider.user_set(
        "carol-1", email="carol@example.com", email_verified=True, name="Carol Jones",
        preferred_username="carol", groups=["chat", "sales"],
    )  # fmt: skip
    with fresh_page(browser) as page:
        provider_sign_in(page, server, provider, "carol-1", start="/accounts/usage/")
        page.wait_for_url(f"{server.url}/accounts/usage/")
        expect(page.get_by_role("heading", name="Your usage")).to_be_visible()
        page.goto(f"{server.url}/")
        expect(page.locator(".whoami")).to_have_text("carol")
    account = account_of(server, "carol-1")
    assert (account["username"], account["roles"], account["is_staff"], account["links"]) == (
        "carol",
        ["Member"],
        False,
        1,
    )


def test_the_role_follows_the_groups_at_every_sign_in(browser, sso):
    provider, server, _ = sso
    provider.user_set("dave-1", email="dave@example.com", email_verified=True, groups=["chat"])
    with fresh_page(browser) as page:
        provider_sign_in(page, server, provider, "dave-1")
        page.wait_for_url(f"{server.url}/")
        expect(page.locator("#account-menu a[href='/admin/']")).to_have_count(0)
    first = account_of(server, "dave-1")
    assert (first["roles"], first["is_staff"]) == (["Member"], False)

    provider.user_set(
        "dave-1", email="dave@example.com", email_verified=True, groups=["chat", "webchat-admins"]
    )
    with fresh_page(browser) as page:
        provider_sign_in(page, server, provider, "dave-1")
        page.wait_for_url(f"{server.url}/")
        expect(page.locator("#account-menu a[href='/admin/']")).to_have_count(1)
    second = account_of(server, "dave-1")
    assert (second["pk"], second["roles"], second["is_staff"]) == (first["pk"], ["Admin"], True)

    provider.user_set("dave-1", email="dave@example.com", email_verified=True, groups=["reviewers"])
    with fresh_page(browser) as page:
        provider_sign_in(page, server, provider, "dave-1")
        page.wait_for_url(f"{server.url}/")
    third = account_of(server, "dave-1")
    assert (third["roles"], third["is_staff"]) == (["Reviewer"], True)


def test_someone_in_no_allowed_group_is_refused_without_a_session(browser, sso):
    provider, server, _ = sso
    provider.user_set("erin-1", email="erin@example.com", email_verified=True, groups=["sales"])
    with fresh_page(browser) as page:
        provider_sign_in(page, server, provider, "erin-1")
        page.wait_for_url(f"{server.url}/accounts/oidc/sso/login/callback/**")
        expect(page.get_by_role("heading")).to_have_text("You cannot sign in to Webchat")
        expect(page.get_by_role("alert")).to_have_text(
            "Your account is not in a group that may use Webchat."
        )
        assert signed_out(page, server)
    emails = server.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User;"
        "print(list(User.objects.values_list('email', flat=True)))",
    )
    assert "erin@example.com" not in emails


def test_an_account_with_the_same_email_is_not_linked_unless_allowed(browser, sso):
    provider, server, _ = sso
    server.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User;"
        f"User.objects.create_user('frank', 'frank@example.com', {PASSWORD!r})",
    )
    provider.user_set("frank-1", email="frank@example.com", email_verified=True, groups=["chat"])
    with fresh_page(browser) as page:
        provider_sign_in(page, server, provider, "frank-1")
        expect(page.get_by_role("alert")).to_contain_text(
            "A Webchat account with your email address already exists."
        )
        assert signed_out(page, server)


def test_a_verified_email_links_the_existing_account_where_allowed(browser, sso):
    provider, _, server = sso
    server.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User;"
        f"print(User.objects.create_user('grace', 'Grace@example.com', {PASSWORD!r}).pk)",
    )
    provider.user_set("grace-1", email="grace@example.com", email_verified=True, groups=["chat"])
    provider.user_set("grace-2", email="grace@example.com", email_verified=False, groups=["chat"])
    with fresh_page(browser) as page:
        provider_sign_in(page, server, provider, "grace-2")
        expect(page.get_by_role("alert")).to_contain_text("does not say the address is verified")
        assert signed_out(page, server)
    with fresh_page(browser) as page:
        provider_sign_in(page, server, provider, "grace-1")
        page.wait_for_url(f"{server.url}/")
        expect(page.locator(".whoami")).to_have_text("grace")
    assert account_of(server, "grace-1")["username"] == "grace"


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _redirect_tampered(route: Route, *, hops: int, **changes: str) -> None:
    """Let the request through and follow ``hops`` redirects after it, then hand the browser
    the last redirect with its target's query changed. (Playwright cannot intercept the
    redirects that the browser follows itself, so they are followed here, with the
    browser's cookies.)"""
    response = route.fetch(max_redirects=0)
    for _ in range(hops):
        response = route.request.frame.page.context.request.get(
            response.headers["location"], max_redirects=0
        )
    location = _with_query(response.headers["location"], **changes)
    route.fulfill(status=303, headers={"location": location})


def test_a_tampered_state_is_refused(browser, sso):
    provider, server, _ = sso
    provider.user_set("henry-1", email="henry@example.com", email_verified=True, groups=["chat"])
    with fresh_page(browser) as page:
        # The provider's sign-in form, then its redirect back to Webchat with the code.
        page.route(
            re.compile(re.escape(provider.issuer) + r"/interaction/[^/]+/login"),
            lambda route: _redirect_tampered(route, hops=1, state="forged-state"),
        )
        provider_sign_in(page, server, provider, "henry-1")
        expect(page.get_by_role("heading")).to_have_text("Signing in with Example SSO failed")
        expect(page.get_by_role("alert")).to_have_text(
            "Signing in did not complete. Please try again."
        )
        assert signed_out(page, server)


def test_a_tampered_nonce_is_refused(browser, sso):
    provider, server, _ = sso
    provider.user_set("ivy-1", email="ivy@example.com", email_verified=True, groups=["chat"])
    with fresh_page(browser) as page:
        # Webchat's redirect to the provider's authorization endpoint.
        page.route(
            re.compile(re.escape(server.url) + "/accounts/oidc/sso/login/$"),
            lambda route: _redirect_tampered(route, hops=0, nonce="forged-nonce"),
        )
        provider_sign_in(page, server, provider, "ivy-1")
        expect(page.get_by_role("alert")).to_have_text(
            "The identity provider's answer was not valid."
        )
        assert signed_out(page, server)


def test_signing_out_ends_the_session_its_sockets_and_the_providers_session(
    browser, sso, fake_upstream_server
):
    provider, server, _ = sso
    fake_upstream_server.reset(reply="Hello.")
    provider.user_set("judy-1", email="judy@example.com", email_verified=True, groups=["chat"])
    with fresh_page(browser) as chat:
        provider_sign_in(chat, server, provider, "judy-1")
        chat.wait_for_url(f"{server.url}/")
        chat.context.add_init_script(COUNT_SOCKET_OPENINGS)
        chat.fill("#composer-text", "Hello")
        chat.press("#composer-text", "Enter")
        chat.wait_for_url("**/c/*/")
        chat.reload()
        chat.wait_for_function("() => window.socketOpenings === 1")

        other_tab = chat.context.new_page()
        other_tab.goto(f"{server.url}/")
        other_tab.locator("#account-menu summary").click()
        other_tab.get_by_role("button", name="Sign out").click()
        other_tab.wait_for_url(f"{provider.issuer}/session/end**")
        # The chat's socket closed with Webchat's session, before the provider's page.
        chat.locator("#session-ended").wait_for()
        other_tab.get_by_role("button", name="Yes, sign me out").click()
        other_tab.wait_for_url(f"{server.url}/accounts/login/")
        assert signed_out(other_tab, server)
        # The provider's session ended too: signing in asks for the account again.
        other_tab.get_by_role("button", name="Sign in with Example SSO").click()
        other_tab.wait_for_url(f"{provider.issuer}/interaction/**")


def test_with_password_sign_in_off_only_a_superuser_signs_in_with_a_password(browser, sso):
    _, _, server = sso
    server.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import User;"
        f"User.objects.create_user('kim', password={PASSWORD!r})",
    )
    with fresh_page(browser) as page:
        page.goto(f"{server.url}/accounts/login/")
        expect(page.get_by_role("button", name="Sign in with Example SSO")).to_be_visible()
        expect(page.locator("#id_password")).to_have_count(0)

        page.goto(f"{server.url}/accounts/login/?password=1")
        page.fill("#id_username", "kim")
        page.fill("#id_password", PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page.get_by_role("alert")).to_have_text(
            "Your username and password didn't match. Please try again."
        )
        assert signed_out(page, server)

        page.goto(f"{server.url}/accounts/login/?password=1")
        page.fill("#id_username", "root")
        page.fill("#id_password", PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(f"{server.url}/")
        expect(page.locator(".whoami")).to_have_text("root")
