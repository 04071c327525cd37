"""The admin under Webchat's name: its titles, theme, icon, translatable names and
breadcrumbs."""

import html as html_module
import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.test import Client
from django.urls import reverse
from django.utils.functional import Promise

from accounts import roles
from tests.factories import user_with_role

PROJECT_APPS = ("accounts", "api", "conversations", "review")


@pytest.fixture
def admin_client(db) -> Client:
    client = Client()
    client.force_login(user_with_role(roles.ADMIN, username="boss", is_superuser=True))
    return client


def test_the_admin_is_titled_webchat_administration(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert '<div id="site-name"><a href="/admin/">Webchat administration</a></div>' in html
    assert "<title>Site administration | Webchat administration</title>" not in html
    assert "Administration | Webchat administration</title>" in html
    assert "Django administration" not in html
    assert "Django site admin" not in html


@pytest.mark.parametrize(
    ("cookie", "shown"), [("dark", "dark"), ("light", "light"), (None, "auto")]
)
def test_the_admin_takes_the_theme_chosen_in_the_chat(admin_client, cookie, shown):
    if cookie:
        admin_client.cookies["theme"] = cookie
    html = admin_client.get(reverse("admin:conversations_conversation_changelist")).content.decode()
    script = f'<script src="{static("webchat/admin-theme.js")}" data-theme="{shown}"></script>'
    assert script in html
    # Django's own switch, which kept its choice apart from the chat's, is not loaded.
    assert "admin/js/theme.js" not in html
    assert 'href="/static/admin/css/dark_mode.css"' in html


def test_the_admins_theme_switch_sets_the_chats_theme(admin_client):
    page = reverse("admin:review_flag_changelist")
    admin_client.cookies["theme"] = "dark"
    html = admin_client.get(page).content.decode()
    form = html[html.index('<form class="theme-toggle-form"') :]
    form = form[: form.index("</form>")]
    assert 'action="/theme/"' in form
    assert f'name="next" value="{page}"' in form
    assert 'name="theme" value="system"' in form  # dark, then the system's, then light
    response = admin_client.post("/theme/", {"theme": "system", "next": page})
    assert response.status_code == 302
    assert response.url == page
    assert response.cookies["theme"].value == ""


def test_the_favicon_is_answered_and_linked(admin_client):
    response = Client().get("/favicon.ico")
    assert response.status_code == 302
    assert response.url == static("webchat/favicon.svg")
    assert finders.find("webchat/favicon.svg")
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert f'<link rel="icon" href="{static("webchat/favicon.svg")}" type="image/svg+xml">' in html


def _project_models():
    for label in PROJECT_APPS:
        yield from apps.get_app_config(label).get_models()


def test_every_name_the_admin_shows_of_the_projects_apps_is_translatable():
    assert {app.label for app in apps.get_app_configs()} >= set(PROJECT_APPS)
    untranslatable = []
    for app_config in apps.get_app_configs():
        if app_config.label in PROJECT_APPS and not isinstance(app_config.verbose_name, Promise):
            untranslatable.append(app_config.label)
    for model in _project_models():
        opts = model._meta
        for name in ("verbose_name", "verbose_name_plural"):
            if not isinstance(getattr(opts, name), Promise):
                untranslatable.append(f"{opts.label}.Meta.{name}")
        for field in opts.get_fields():
            if field.auto_created:
                continue
            if not isinstance(field.verbose_name, Promise):
                untranslatable.append(f"{opts.label}.{field.name}")
            if field.help_text and not isinstance(field.help_text, Promise):
                untranslatable.append(f"{opts.label}.{field.name} help_text")
            for _value, choice in field.choices or ():
                if not isinstance(choice, Promise):
                    untranslatable.append(f"{opts.label}.{field.name} choice {choice!r}")
    assert untranslatable == []


def _breadcrumbs(html: str) -> list[str]:
    trail = re.search(r'<div class="breadcrumbs">(.*?)</div>', html, re.S).group(1)
    text = html_module.unescape(re.sub(r"<[^>]+>", "", trail))
    return [part.strip() for part in text.split("\N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK}")]


def test_no_changelists_breadcrumbs_say_the_same_word_twice(admin_client):
    registered = [model for model in apps.get_models() if admin.site.is_registered(model)]
    assert len(registered) >= 8
    trails = {}
    for model in registered:
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        response = admin_client.get(url)
        assert response.status_code == 200, url
        trails[opts.label] = _breadcrumbs(response.content.decode())
    repeated = {}
    for label, trail in trails.items():
        words = [word.lower() for word in re.findall(r"\w+", " ".join(trail[1:]))]
        if len(words) != len(set(words)):
            repeated[label] = trail
    assert repeated == {}
    assert trails["conversations.Conversation"] == ["Home", "Chat", "Conversations"]
    assert trails["review.Flag"] == ["Home", "Review", "Flags"]
    assert trails["review.ReviewAccess"] == ["Home", "Review", "Reads by staff"]
    assert trails["accounts.Invitation"] == ["Home", "Accounts", "Invitations"]
