"""The sidebar's notice that staff may read conversations: in full until dismissed, then
behind its button; the dismissal is remembered per account on the browser."""

from django.test import Client
from django.urls import reverse

from accounts import privacy_notice
from tests.factories import UserFactory
from tests.generation_helpers import HTMX

NOTICE = "Reviewers and administrators of this service may read your conversations"
DISMISS_URL = reverse("conversations:privacy-notice-dismiss")


def _expanded(client: Client) -> bool:
    return 'id="privacy-note"' in client.get(reverse("conversations:index")).content.decode()


def test_the_notice_is_stated_in_full_until_dismissed_then_kept_behind_its_button(owner_client):
    page = owner_client.get(reverse("conversations:index")).content.decode()
    assert 'id="privacy-note"' in page
    assert f'action="{DISMISS_URL}"' in page
    assert 'popovertarget="privacy-popover"' in page

    response = owner_client.post(DISMISS_URL, {"next": "/search/"})

    assert response.status_code == 302
    assert response.url == "/search/"
    assert response.cookies[privacy_notice.COOKIE]["httponly"]
    page = owner_client.get(reverse("conversations:index")).content.decode()
    assert 'id="privacy-note"' not in page
    assert page.count(NOTICE) == 1  # in the popover
    assert 'popovertarget="privacy-popover"' in page


def test_with_htmx_the_dismissal_answers_an_empty_fragment(owner_client):
    response = owner_client.post(DISMISS_URL, headers=HTMX)
    assert response.status_code == 200
    assert response.content == b""
    assert not _expanded(owner_client)


def test_a_dismissal_is_remembered_for_its_account_only_on_a_shared_browser(owner, owner_client):
    owner_client.post(DISMISS_URL, headers=HTMX)
    other = UserFactory(username="second")
    owner_client.force_login(other)
    assert _expanded(owner_client)

    owner_client.post(DISMISS_URL, headers=HTMX)
    seen = owner_client.cookies[privacy_notice.COOKIE].value.split(".")
    assert seen == [str(owner.pk), str(other.pk)]
    owner_client.force_login(owner)
    assert not _expanded(owner_client)


def test_a_forged_cookie_is_read_for_its_numbers_only(owner, owner_client):
    owner_client.cookies[privacy_notice.COOKIE] = f"x.{owner.pk}5.<script>"
    assert _expanded(owner_client)
    owner_client.post(DISMISS_URL, headers=HTMX)
    assert owner_client.cookies[privacy_notice.COOKIE].value == f"{owner.pk}5.{owner.pk}"


def test_without_staff_reading_there_is_no_notice_at_all(owner_client, settings):
    settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS = False
    page = owner_client.get(reverse("conversations:index")).content.decode()
    assert NOTICE not in page
    assert "privacy-popover" not in page
