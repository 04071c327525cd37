import pytest
from django.urls import reverse

from accounts import theme

THEME_URL = reverse("conversations:theme")
HTMX = {"HX-Request": "true"}


def test_it_remembers_the_chosen_theme_in_a_cookie_and_goes_back(owner_client, conversation):
    page = conversation.get_absolute_url()
    response = owner_client.post(THEME_URL, {"theme": "dark", "next": page})
    assert response.status_code == 302
    assert response.url == page
    cookie = response.cookies[theme.COOKIE]
    assert cookie.value == "dark"
    assert cookie["max-age"] == theme.COOKIE_MAX_AGE
    assert cookie["samesite"] == "Lax"
    assert cookie["httponly"]


def test_choosing_the_system_theme_forgets_the_cookie(owner_client):
    owner_client.cookies[theme.COOKIE] = "dark"
    response = owner_client.post(THEME_URL, {"theme": "system", "next": "/"})
    assert response.status_code == 302
    assert response.cookies[theme.COOKIE].value == ""
    assert response.cookies[theme.COOKIE]["max-age"] == 0


@pytest.mark.parametrize("value", ["", "blue", "DARK", "dark "])
def test_it_refuses_an_unknown_theme(owner_client, value):
    response = owner_client.post(THEME_URL, {"theme": value, "next": "/"})
    assert response.status_code == 400
    assert b"Choose a theme: system, light or dark." in response.content
    assert theme.COOKIE not in response.cookies


@pytest.mark.parametrize(
    "next_url",
    [
        "https://evil.example/",
        "//evil.example/",
        "http://testserver.evil.example/",
        "javascript:alert(1)",
        "",
    ],
)
def test_it_goes_back_only_to_a_page_of_this_site(owner_client, next_url):
    response = owner_client.post(THEME_URL, {"theme": "light", "next": next_url})
    assert response.status_code == 302
    assert response.url == reverse("conversations:index")
    assert response.cookies[theme.COOKIE].value == "light"


def test_it_refuses_to_be_fetched(owner_client):
    assert owner_client.get(THEME_URL).status_code == 405


def test_the_page_is_rendered_in_the_chosen_theme_from_the_first_paint(owner_client):
    owner_client.cookies[theme.COOKIE] = "dark"
    html = owner_client.get("/").content.decode()
    assert '<html lang="en" data-theme="dark">' in html
    assert '<meta name="color-scheme" content="dark">' in html
    assert 'id="theme-dark" class="theme-option" name="theme" value="dark"' in html
    assert 'value="dark"\n              aria-pressed="true"' in html


@pytest.mark.parametrize("cookie", [None, "purple"])
def test_without_a_valid_choice_the_page_follows_the_system(owner_client, cookie):
    if cookie is not None:
        owner_client.cookies[theme.COOKIE] = cookie
    html = owner_client.get("/").content.decode()
    assert '<html lang="en" data-theme="system">' in html
    assert '<meta name="color-scheme" content="light dark">' in html


def test_the_switch_goes_back_to_the_page_it_is_on(owner_client, conversation):
    page = conversation.get_absolute_url()
    html = owner_client.get(page).content.decode()
    assert f'<input type="hidden" name="next" value="{page}">' in html


def test_with_htmx_it_answers_the_switch_showing_the_new_theme(owner_client, conversation):
    page = conversation.get_absolute_url()
    response = owner_client.post(THEME_URL, {"theme": "light", "next": page}, headers=HTMX)
    assert response.status_code == 200
    assert response.cookies[theme.COOKIE].value == "light"
    html = response.content.decode()
    assert html.startswith('<form id="theme-form"')
    assert 'data-current-theme="light"' in html
    assert f'name="next" value="{page}"' in html
    assert html.count('aria-pressed="true"') == 1
    assert 'value="light"\n              aria-pressed="true"' in html


def test_anyone_may_choose_a_theme_before_signing_in(client, owner):
    response = client.post(THEME_URL, {"theme": "dark", "next": reverse("login")})
    assert response.status_code == 302
    assert response.url == reverse("login")
    assert response.cookies[theme.COOKIE].value == "dark"
