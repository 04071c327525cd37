"""A fresh install's first visitor creates the first admin account."""

from django.contrib.auth import get_user_model
from django.urls import reverse


def test_a_fresh_install_sends_every_visitor_to_the_setup_form(client, db):
    for url in ["/", "/accounts/login/", "/c/1/", "/admin/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response.url == reverse("setup")


def test_the_setup_form_creates_the_first_admin_and_signs_them_in(client, db):
    response = client.post(
        reverse("setup"),
        {
            "username": "boss",
            "email": "",
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
        },
    )
    assert response.status_code == 302
    admin = get_user_model().objects.get()
    assert (admin.username, admin.is_staff, admin.is_superuser) == ("boss", True, True)
    assert client.get("/").status_code == 200


def test_the_setup_form_is_gone_once_a_user_exists(client, owner):
    response = client.get(reverse("setup"))
    assert response.status_code == 302
    assert get_user_model().objects.count() == 1
