"""The interface in English and Korean: the browser's language, the user's choice, messages
made in Python and by a reply's generation, and a Korean catalog complete for the sources."""

import gettext
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from conversations.models import Message
from tests.factories import MessageFactory
from tests.generation_helpers import HTMX, communicator_for, finished, latest_reply

LANGUAGE_URL = reverse("conversations:language")
KOREAN = {"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.5"}
ENGLISH = {"Accept-Language": "en-US,en;q=0.9"}
CATALOG = Path(settings.BASE_DIR) / "locale" / "ko" / "LC_MESSAGES"
NEEDS_GETTEXT = pytest.mark.skipif(
    shutil.which("msgfmt") is None or shutil.which("xgettext") is None,
    reason="needs GNU gettext (apt-get install gettext)",
)


@pytest.fixture(autouse=True)
def _default_language_afterwards():
    """A request activates its language where the test runs; the next test starts afresh."""
    yield
    translation.deactivate()


def test_a_browser_asking_for_korean_gets_the_page_in_korean(owner_client):
    response = owner_client.get(reverse("conversations:index"), headers=KOREAN)
    page = response.content.decode()
    assert '<html lang="ko"' in page
    assert response["Content-Language"] == "ko"
    assert 'placeholder="Webchat에 메시지 보내기…"' in page
    assert 'aria-label="보내기">보내기</button>' in page
    assert "무엇을 도와드릴까요?" in page
    assert "Message Webchat…" not in page


def test_a_browser_asking_for_english_gets_the_page_in_english(owner_client):
    response = owner_client.get(reverse("conversations:index"), headers=ENGLISH)
    page = response.content.decode()
    assert '<html lang="en"' in page
    assert 'placeholder="Message Webchat…"' in page
    assert 'aria-label="Send">Send</button>' in page
    assert "보내기" not in page


def test_a_language_without_a_translation_gets_english(owner_client):
    response = owner_client.get(reverse("conversations:index"), headers={"Accept-Language": "fr"})
    assert '<html lang="en"' in response.content.decode()


def test_the_sign_in_page_follows_the_browser_too(client, owner):
    response = client.get(reverse("login"), headers=KOREAN)
    assert "Webchat 로그인" in response.content.decode()


def test_the_chosen_language_overrides_the_browsers(owner_client):
    response = owner_client.post(LANGUAGE_URL, {"language": "en", "next": "/"}, headers=KOREAN)
    assert response.status_code == 302
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "en"
    assert cookie["samesite"] == "Lax"
    assert cookie["httponly"]

    page = owner_client.get(reverse("conversations:index"), headers=KOREAN).content.decode()
    assert 'placeholder="Message Webchat…"' in page
    assert 'id="language-en" class="theme-option" name="language" value="en"' in page

    owner_client.post(LANGUAGE_URL, {"language": "ko", "next": "/"}, headers=ENGLISH)
    page = owner_client.get(reverse("conversations:index"), headers=ENGLISH).content.decode()
    assert 'placeholder="Webchat에 메시지 보내기…"' in page


def test_the_language_switch_shows_which_language_is_in_use(owner_client):
    page = owner_client.get(reverse("conversations:index"), headers=KOREAN).content.decode()
    switch = re.search(r'<form id="language-form".*?</form>', page, re.DOTALL).group()
    assert re.search(r'value="ko" lang="ko"\s+aria-pressed="true">한국어<', switch)
    assert re.search(r'value="en" lang="en"\s+aria-pressed="false">English<', switch)
    assert 'name="next" value="/"' in switch


def test_choosing_a_language_goes_back_to_the_page(owner_client, conversation):
    page = conversation.get_absolute_url()
    response = owner_client.post(LANGUAGE_URL, {"language": "ko", "next": page})
    assert response.status_code == 302
    assert response.url == page


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/", ""])
def test_choosing_a_language_goes_back_only_to_a_page_of_this_site(owner_client, next_url):
    response = owner_client.post(LANGUAGE_URL, {"language": "ko", "next": next_url})
    assert response.url == reverse("conversations:index")


@pytest.mark.parametrize("value", ["", "fr", "KO", "ko-kr "])
def test_an_unknown_language_is_refused_and_nothing_is_kept(owner_client, value):
    response = owner_client.post(LANGUAGE_URL, {"language": value, "next": "/"}, headers=KOREAN)
    assert response.status_code == 400
    assert "언어를 선택하세요: English, 한국어." in response.content.decode()
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies


def test_a_language_can_be_chosen_before_signing_in(client, owner):
    response = client.post(LANGUAGE_URL, {"language": "ko", "next": reverse("login")})
    assert response.status_code == 302
    assert "Webchat 로그인" in client.get(reverse("login")).content.decode()


def test_an_empty_message_is_refused_in_korean(owner_client, conversation):
    url = reverse("conversations:message-create", args=[conversation.pk])
    response = owner_client.post(url, {"text": "   "}, headers={**HTMX, **KOREAN})
    assert response.status_code == 422
    assert "보내기 전에 메시지를 입력하세요." in response.content.decode()
    assert not Message.objects.filter(conversation=conversation).exists()


def test_a_wrong_setting_is_refused_in_korean(owner_client, conversation):
    url = reverse("conversations:settings", args=[conversation.pk])
    data = {"model": conversation.model, "temperature": "3"}
    response = owner_client.post(url, data, headers={**HTMX, **KOREAN})
    assert response.status_code == 422
    page = response.content.decode()
    assert "온도는 0부터 2까지의 숫자여야 합니다." in page
    assert "저장하지 않았습니다" in page


def test_the_scripts_get_their_words_in_the_pages_language(owner_client):
    page = owner_client.get(reverse("conversations:index"), headers=KOREAN).content.decode()
    block = re.search(r'<script id="script-words" type="application/json">(.*?)</script>', page)
    words = json.loads(block.group(1))
    assert words["Copy"] == "복사"
    assert words["Reply started."] == "답변이 시작되었습니다."
    assert words["Remove %(name)s"] == "%(name)s 빼기"


@pytest.mark.django_db(transaction=True)
async def test_a_reply_fails_in_the_language_of_the_page_that_sent_the_message(
    async_owner_client, conversation, fake_upstream
):
    fake_upstream.reset(failure="http_402")
    url = reverse("conversations:message-create", args=[conversation.pk])
    await async_owner_client.post(url, {"text": "안녕하세요"}, headers={**HTMX, **KOREAN})
    reply = await finished(await latest_reply(conversation))
    assert (
        reply.error
        == "채팅 서비스의 크레딧 또는 할당량이 모두 소진되었습니다. 관리자에게 알려 주세요."
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("headers", "cookies"),
    [([(b"accept-language", b"ko")], {}), ([], {settings.LANGUAGE_COOKIE_NAME: "ko"})],
    ids=["browser", "choice"],
)
async def test_the_socket_speaks_the_pages_language(conversation, owner, headers, cookies):
    await sync_to_async(MessageFactory)(
        conversation=conversation, role="assistant", status="pending"
    )
    communicator = communicator_for(conversation.pk, owner, headers=headers)
    communicator.scope["cookies"] = cookies
    assert (await communicator.connect())[0]
    assert "모델을 기다리는 중…" in await communicator.receive_from()
    await communicator.disconnect()


# --- The Korean catalog -------------------------------------------------------------------


def _statistics(po_file: Path) -> str:
    """msgfmt's count of translated, fuzzy and untranslated messages; it also checks that
    every translation keeps its message's placeholders."""
    checked = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", os.devnull, str(po_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    return checked.stderr.strip()


@NEEDS_GETTEXT
def test_every_message_of_the_korean_catalog_is_translated():
    assert re.fullmatch(r"\d+ translated messages\.", _statistics(CATALOG / "django.po"))


@NEEDS_GETTEXT
def test_the_compiled_korean_catalog_is_the_one_in_the_po_file(tmp_path):
    compiled = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "-o", str(compiled), str(CATALOG / "django.po")], check=True)
    with compiled.open("rb") as fresh, (CATALOG / "django.mo").open("rb") as committed:
        assert gettext.GNUTranslations(committed)._catalog == (
            gettext.GNUTranslations(fresh)._catalog
        ), "run `make messages` to compile the catalog"


@NEEDS_GETTEXT
def test_every_string_of_the_sources_is_in_the_korean_catalog(tmp_path):
    """Gathers the strings of a copy of the sources into a copy of the catalog, as
    `make messages` does: anything new would come in untranslated."""
    root = Path(settings.BASE_DIR)
    for folder in ("conversations", "accounts", "review", "api", "webchat", "templates", "locale"):
        shutil.copytree(
            root / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(root / "manage.py", tmp_path)
    gathered = subprocess.run(
        [sys.executable, "manage.py", "makemessages", "--locale=ko", "--no-obsolete"],
        cwd=tmp_path,
        env={**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "webchat.settings"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert gathered.returncode == 0, gathered.stderr
    statistics = _statistics(tmp_path / "locale" / "ko" / "LC_MESSAGES" / "django.po")
    assert re.fullmatch(r"\d+ translated messages\.", statistics), (
        f"{statistics} Translate them in locale/ko/LC_MESSAGES/django.po (make messages)."
    )
