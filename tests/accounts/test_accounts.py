"""Invitations, signing up with approval, and changing or resetting a password."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from accounts.models import Invitation
from tests.factories import UserFactory

NEW_ACCOUNT = {
    "username": "newcomer",
    "email": "newcomer@example.com",
    "password1": "a-long-pass-phrase",
    "password2": "a-long-pass-phrase",
}


@pytest.fixture(autouse=True)
def admin(db):
    """The install's administrator (without any user, every page leads to the setup form)."""
    return UserFactory(username="boss", is_staff=True, is_superuser=True)


def _newcomer_exists() -> bool:
    return get_user_model().objects.filter(username="newcomer").exists()


def _invitation(role: str = roles.MEMBER, *, expires_in=timedelta(days=1)) -> Invitation:
    return Invitation.objects.create(
        group=Group.objects.get(name=role), expires_at=timezone.now() + expires_in
    )


def test_an_invitation_creates_an_account_in_its_role_and_signs_it_in(client, db):
    invitation = _invitation()
    assert client.get(invitation.get_absolute_url()).status_code == 200
    response = client.post(invitation.get_absolute_url(), NEW_ACCOUNT)
    assert response.status_code == 302
    user = get_user_model().objects.get(username="newcomer")
    assert list(user.groups.values_list("name", flat=True)) == [roles.MEMBER]
    assert (user.is_active, user.is_staff) == (True, False)
    invitation.refresh_from_db()
    assert (invitation.used_by, invitation.used_at is not None) == (user, True)
    assert client.get("/").status_code == 200


def test_an_invitation_works_only_once(client, db):
    invitation = _invitation()
    client.post(invitation.get_absolute_url(), NEW_ACCOUNT)
    second = Client().post(invitation.get_absolute_url(), {**NEW_ACCOUNT, "username": "second"})
    assert second.status_code == 410
    assert "expired or was already used" in second.content.decode()
    assert not get_user_model().objects.filter(username="second").exists()


def test_an_expired_invitation_is_refused_and_creates_nothing(client, db):
    invitation = _invitation(expires_in=timedelta(seconds=-1))
    assert client.get(invitation.get_absolute_url()).status_code == 410
    response = client.post(invitation.get_absolute_url(), NEW_ACCOUNT)
    assert response.status_code == 410
    assert not _newcomer_exists()


def test_an_unknown_invitation_token_is_refused(client, db):
    url = reverse("invitation-accept", args=["no-such-token"])
    assert client.get(url).status_code == 410


def test_a_bad_form_on_an_invitation_changes_nothing(client, db):
    invitation = _invitation()
    response = client.post(invitation.get_absolute_url(), {**NEW_ACCOUNT, "password2": "other"})
    assert response.status_code == 200
    assert "password fields didn" in response.content.decode()
    assert not _newcomer_exists()
    invitation.refresh_from_db()
    assert invitation.used_at is None


def test_an_invitation_to_review_makes_a_staff_account(client, db):
    client.post(_invitation(roles.REVIEWER).get_absolute_url(), NEW_ACCOUNT)
    assert get_user_model().objects.get(username="newcomer").is_staff


def test_an_admin_creates_an_invitation_with_a_link_to_hand_out(admin):
    client = Client()
    client.force_login(admin)
    form = client.get(reverse("admin:accounts_invitation_add")).content.decode()
    assert 'name="expires_at_0"' in form
    expires = timezone.now() + timedelta(days=2)
    response = client.post(
        reverse("admin:accounts_invitation_add"),
        {
            "group": Group.objects.get(name=roles.MEMBER).pk,
            "expires_at_0": expires.strftime("%Y-%m-%d"),
            "expires_at_1": expires.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert invitation.created_by == admin
    link = f"http://testserver{invitation.get_absolute_url()}"
    page = client.get(reverse("admin:accounts_invitation_change", args=[invitation.pk]))
    assert f'value="{link}"' in page.content.decode()


def _admin_client(admin) -> Client:
    client = Client()
    client.force_login(admin)
    return client


def test_the_invitations_list_shows_each_usable_link_whole_with_a_copy_button(admin):
    usable, used, expired = _invitation(), _invitation(), _invitation(expires_in=-timedelta(1))
    used.used_at = timezone.now()
    used.save()

    page = _admin_client(admin).get(reverse("admin:accounts_invitation_changelist"))
    html = page.content.decode()

    field = f"invitation-link-{usable.pk}"
    assert f'id="{field}"' in html
    assert f'value="http://testserver/accounts/invitation/{usable.token}/"' in html
    # Shown by static/webchat/copy-link.js, which the page loads; without it, hidden.
    assert re.search(
        rf'<button type="button" class="button" data-copy-link="{field}"[^>]* hidden>', html
    )
    assert "/static/webchat/copy-link" in html
    for gone in (used, expired):
        assert gone.token not in html
    assert ">Used<" in html
    assert ">Expired<" in html


def test_an_invitation_link_names_the_scheme_and_host_the_admin_reached(admin, settings):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    invitation = _invitation()

    page = _admin_client(admin).get(
        reverse("admin:accounts_invitation_change", args=[invitation.pk]),
        headers={"host": "chat.example.com"},
        secure=True,
    )

    assert f'value="https://chat.example.com/accounts/invitation/{invitation.token}/"' in (
        page.content.decode()
    )


def test_signing_up_is_off_by_default(client, db):
    assert client.get(reverse("signup")).status_code == 404
    assert client.post(reverse("signup"), NEW_ACCOUNT).status_code == 404
    assert not _newcomer_exists()


def test_a_signed_up_account_waits_for_an_admins_approval(client, admin, settings):
    settings.WEBCHAT_SELF_SIGNUP = True
    response = client.post(reverse("signup"), NEW_ACCOUNT)
    assert "waits for an administrator" in response.content.decode()
    user = get_user_model().objects.get(username="newcomer")
    assert not user.is_active
    assert list(user.groups.values_list("name", flat=True)) == [roles.MEMBER]
    assert not client.login(username="newcomer", password="a-long-pass-phrase")

    admin_client = Client()
    admin_client.force_login(admin)
    admin_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "approve", "_selected_action": [user.pk]},
    )
    assert client.login(username="newcomer", password="a-long-pass-phrase")


def test_a_user_changes_their_password(owner, owner_client):
    response = owner_client.post(
        reverse("password_change"),
        {
            "old_password": "correct horse battery",
            "new_password1": "another-long-phrase",
            "new_password2": "another-long-phrase",
        },
    )
    assert response["Location"] == reverse("password_change_done")
    owner.refresh_from_db()
    assert owner.check_password("another-long-phrase")


def test_a_wrong_old_password_changes_nothing(owner, owner_client):
    response = owner_client.post(
        reverse("password_change"),
        {
            "old_password": "wrong",
            "new_password1": "another-long-phrase",
            "new_password2": "another-long-phrase",
        },
    )
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    owner.refresh_from_db()
    assert owner.check_password("correct horse battery")


def test_a_password_is_reset_through_the_mailed_link(client, db, mailoutbox):
    user = UserFactory(username="forgetful", email="forgetful@example.com")
    response = client.post(reverse("password_reset"), {"email": "forgetful@example.com"})
    assert response["Location"] == reverse("password_reset_done")
    [mail] = mailoutbox
    link = re.search(r"https?://[^/\s]+(/\S+)", mail.body).group(1)
    form_url = client.get(link)["Location"]  # Django hides the token behind a redirect
    new_password = {"new_password1": "fresh-long-phrase", "new_password2": "fresh-long-phrase"}
    response = client.post(form_url, new_password)
    assert response["Location"] == reverse("password_reset_complete")
    user.refresh_from_db()
    assert user.check_password("fresh-long-phrase")
    assert client.get(link).status_code == 200  # used: the page says the link no longer works
    assert "no longer works" in client.get(link).content.decode()
