"""Renaming, pinning and deleting conversations from the sidebar, with htmx and without."""

import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from conversations import images, services
from conversations.models import Conversation, Message
from tests import image_files
from tests.factories import ConversationFactory, MessageFactory
from tests.generation_helpers import HTMX, communicator_for

pytestmark = pytest.mark.django_db


def _url(name: str, conversation: Conversation) -> str:
    return reverse(f"conversations:{name}", args=[conversation.pk])


def _from_page(page: str) -> dict:
    """Headers of an htmx request made from ``page``."""
    return {**HTMX, "HX-Current-URL": f"http://testserver{page}"}


# --- The sidebar ----------------------------------------------------------------------


def test_pinned_conversations_are_listed_first_and_marked(owner, owner_client):
    ConversationFactory(owner=owner, title="Newest")
    pinned = ConversationFactory(owner=owner, title="Pinned one", pinned=True)
    Conversation.objects.filter(pk=pinned.pk).update(
        updated_at=pinned.updated_at.replace(year=2000)
    )

    page = owner_client.get(reverse("conversations:index")).content.decode()

    assert page.index("Pinned one") < page.index("Newest")
    assert '<span class="visually-hidden">Pinned: </span>' in page
    assert page.count("Pinned: ") == 1


def test_each_conversation_has_a_menu_fetched_when_opened(conversation, owner_client):
    page = owner_client.get(conversation.get_absolute_url()).content.decode()

    here = conversation.get_absolute_url()
    menu = f"{_url('menu', conversation)}?next={here}"
    assert '<summary class="conversation-menu-button" title="Rename, pin or delete">' in page
    assert '<span class="visually-hidden">Options for “Owner&#x27;s chat”</span>' in page
    assert f'hx-get="{_url("menu", conversation)}" hx-trigger="toggle from:closest details' in page
    # Without JavaScript the menu holds a link to the same menu on a page of its own.
    assert f'<a class="conversation-menu-item" href="{menu}">Rename, pin or delete…</a>' in page
    assert _url("rename", conversation) not in page
    assert 'aria-current="page"' in page


def test_the_menu_opens_in_the_sidebar_with_htmx(conversation, owner_client):
    here = conversation.get_absolute_url()
    response = owner_client.get(_url("menu", conversation), headers=_from_page(here))

    page = response.content.decode()
    assert "<html" not in page
    assert f'hx-get="{_url("rename", conversation)}?next={here}"' in page
    assert f'<form method="post" action="{_url("pin", conversation)}"' in page
    assert f'<input type="hidden" name="next" value="{here}">' in page
    assert "Pin to the top" in page
    assert f'hx-get="{_url("delete", conversation)}?next={here}"' in page


def test_the_menu_is_a_page_without_javascript(conversation, owner_client):
    conversation.pinned = True
    conversation.save()

    response = owner_client.get(_url("menu", conversation), {"next": "/"})

    page = response.content.decode()
    assert "<h1>Owner&#x27;s chat</h1>" in page
    assert f'href="{_url("rename", conversation)}?next=/"' in page
    assert f'<form method="post" action="{_url("unpin", conversation)}"' in page
    assert "Unpin" in page
    assert f'href="{_url("delete", conversation)}?next=/"' in page
    assert '<a href="/">Back</a>' in page


def test_the_menu_goes_back_to_the_conversation_when_next_is_elsewhere(conversation, owner_client):
    response = owner_client.get(_url("menu", conversation), {"next": "https://evil.example/"})

    here = conversation.get_absolute_url()
    assert f'<a href="{here}">Back</a>' in response.content.decode()


# --- Renaming -------------------------------------------------------------------------


def test_the_rename_form_is_a_page_without_javascript(conversation, owner_client):
    response = owner_client.get(_url("rename", conversation), {"next": "/"})

    page = response.content.decode()
    assert "<h1>Rename the conversation</h1>" in page
    assert (
        f'<form class="sidebar-form" method="post" action="{_url("rename", conversation)}"' in page
    )
    assert 'name="title" value="Owner&#x27;s chat"' in page
    assert '<input type="hidden" name="next" value="/">' in page


def test_the_rename_form_opens_in_the_menu_with_htmx(conversation, owner_client):
    response = owner_client.get(_url("rename", conversation), headers=_from_page("/"))

    page = response.content.decode()
    assert "<html" not in page
    assert 'name="title"' in page
    assert '<input type="hidden" name="next" value="/">' in page


def test_it_renames_and_goes_back_to_the_page(conversation, owner_client):
    response = owner_client.post(
        _url("rename", conversation), {"title": "  Trip   to Seoul ", "next": "/"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/"
    conversation.refresh_from_db()
    assert (conversation.title, conversation.title_source) == ("Trip to Seoul", "user")


def test_renaming_does_not_move_the_conversation_up(conversation, owner_client):
    before = conversation.updated_at

    owner_client.post(_url("rename", conversation), {"title": "New"})

    conversation.refresh_from_db()
    assert conversation.updated_at == before


def test_rename_with_htmx_answers_with_the_list(owner, conversation, owner_client):
    other = ConversationFactory(owner=owner, title="Other")

    response = owner_client.post(
        _url("rename", conversation),
        {"title": "Renamed", "next": other.get_absolute_url()},
        headers=HTMX,
    )

    page = response.content.decode()
    assert page.startswith('<div class="conversation-list" id="conversation-list">')
    assert f'<span id="conversation-{conversation.pk}-title">Renamed</span>' in page
    # The page it came from is still marked as the one shown.
    assert f'class="conversation-link current" href="{other.get_absolute_url()}"' in page


@pytest.mark.django_db(transaction=True)
async def test_a_rename_shows_in_the_conversations_open_tabs(
    owner, conversation, async_owner_client
):
    communicator = communicator_for(conversation.pk, owner)
    assert (await communicator.connect())[0]

    await async_owner_client.post(_url("rename", conversation), {"title": "<Live> title"})

    frame = await communicator.receive_from(timeout=5)
    await communicator.disconnect()
    assert frame == (
        '<span id="chat-title" hx-swap-oob="innerHTML">&lt;Live&gt; title</span>'
        f'<span id="conversation-{conversation.pk}-title" hx-swap-oob="innerHTML">'
        "&lt;Live&gt; title</span>"
    )


@pytest.mark.parametrize(
    ("title", "says"),
    [
        ("", "Type a title for the conversation."),
        ("   \n ", "Type a title for the conversation."),
        ("x" * 101, "This title is 101 characters long; the limit is 100."),
    ],
)
def test_a_bad_title_is_refused_and_changes_nothing(conversation, owner_client, title, says):
    page_response = owner_client.post(_url("rename", conversation), {"title": title})
    htmx_response = owner_client.post(_url("rename", conversation), {"title": title}, headers=HTMX)

    assert page_response.status_code == htmx_response.status_code == 422
    assert says in page_response.content.decode()
    assert "<h1>Rename the conversation</h1>" in page_response.content.decode()
    assert says in htmx_response.content.decode()
    assert htmx_response["HX-Retarget"] == f"#conversation-{conversation.pk}-menu"
    assert htmx_response["HX-Reswap"] == "innerHTML"
    conversation.refresh_from_db()
    assert (conversation.title, conversation.title_source) == ("Owner's chat", "first_words")


def test_a_next_page_on_another_site_is_ignored(conversation, owner_client):
    response = owner_client.post(
        _url("rename", conversation), {"title": "New", "next": "https://evil.example/"}
    )

    assert response["Location"] == conversation.get_absolute_url()


# --- Pinning --------------------------------------------------------------------------


def test_it_pins_and_unpins(conversation, owner_client):
    before = conversation.updated_at

    response = owner_client.post(_url("pin", conversation), {"next": "/"})
    assert response["Location"] == "/"
    conversation.refresh_from_db()
    assert conversation.pinned

    owner_client.post(_url("pin", conversation))  # pinning twice changes nothing
    conversation.refresh_from_db()
    assert conversation.pinned

    owner_client.post(_url("unpin", conversation))
    conversation.refresh_from_db()
    assert not conversation.pinned
    assert conversation.updated_at == before


def test_pinning_with_htmx_answers_with_the_reordered_list(owner, owner_client):
    old = ConversationFactory(owner=owner, title="Old")
    ConversationFactory(owner=owner, title="New")
    Conversation.objects.filter(pk=old.pk).update(updated_at=old.updated_at.replace(year=2000))

    response = owner_client.post(_url("pin", old), headers=_from_page("/"))

    page = response.content.decode()
    assert page.index("Old") < page.index("New")
    assert page.count('class="conversation-item is-pinned"') == 1
    assert page.index("is-pinned") < page.index("Old")


# --- Deleting -------------------------------------------------------------------------


def test_delete_asks_first_on_a_page_without_javascript(conversation, owner_client):
    response = owner_client.get(_url("delete", conversation))

    page = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Delete the conversation</h1>" in page
    assert (
        f'<form class="sidebar-form" method="post" action="{_url("delete", conversation)}"' in page
    )
    assert "Delete “Owner&#x27;s chat”? Its messages and images are deleted for good." in page
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_delete_asks_first_in_the_menu_with_htmx(conversation, owner_client):
    response = owner_client.get(_url("delete", conversation), headers=_from_page("/"))

    page = response.content.decode()
    assert "<html" not in page
    assert f'hx-post="{_url("delete", conversation)}"' in page
    assert '<button type="submit" class="button button-small button-danger"' in page
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def _conversation_with_an_image(conversation) -> Message:
    picture = images.normalize(
        io.BytesIO(image_files.png()), filename="picture.png", limits=images.ImageLimits()
    )
    user_message, reply = services.message_send(
        conversation=conversation, text="Look", images=[picture]
    )
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE, content="Nice.")
    return user_message


def test_deleting_removes_the_messages_and_their_image_files(
    conversation, owner_client, settings, django_capture_on_commit_callbacks
):
    _conversation_with_an_image(conversation)
    stored = [path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()]
    assert len(stored) == 2  # the image and its thumbnail

    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(_url("delete", conversation), {"next": "/"})

    assert response["Location"] == "/"
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()
    assert not any(path.exists() for path in stored)


def test_deleting_the_conversation_shown_goes_to_a_new_chat(conversation, owner_client):
    here = conversation.get_absolute_url()

    page_response = owner_client.post(_url("delete", conversation), {"next": here})

    assert page_response["Location"] == reverse("conversations:index")


def test_deleting_the_conversation_shown_with_htmx_goes_to_a_new_chat(conversation, owner_client):
    here = conversation.get_absolute_url()

    response = owner_client.post(_url("delete", conversation), {"next": here}, headers=HTMX)

    assert response["HX-Redirect"] == reverse("conversations:index")
    assert not Conversation.objects.filter(pk=conversation.pk).exists()


def test_deleting_another_conversation_with_htmx_answers_with_the_list(owner, owner_client):
    shown = ConversationFactory(owner=owner, title="Shown")
    going = ConversationFactory(owner=owner, title="Going")

    response = owner_client.post(
        _url("delete", going), {"next": shown.get_absolute_url()}, headers=HTMX
    )

    page = response.content.decode()
    assert page.startswith('<div class="conversation-list" id="conversation-list">')
    assert "Shown" in page
    assert "Going" not in page


def test_delete_is_refused_while_a_reply_is_written(conversation, owner_client):
    MessageFactory(conversation=conversation, content="Hello")
    MessageFactory(conversation=conversation, role="assistant", status="streaming", content="Hi")

    page_response = owner_client.post(_url("delete", conversation))
    htmx_response = owner_client.post(_url("delete", conversation), headers=HTMX)

    assert page_response.status_code == htmx_response.status_code == 422
    says = "A reply is still being written in this conversation."
    assert says in page_response.content.decode()
    assert says in htmx_response.content.decode()
    assert htmx_response["HX-Retarget"] == f"#conversation-{conversation.pk}-menu"
    assert Conversation.objects.filter(pk=conversation.pk).exists()


# --- Other users ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "name"),
    [
        ("get", "rename"),
        ("get", "menu"),
        ("post", "rename"),
        ("post", "pin"),
        ("post", "unpin"),
        ("get", "delete"),
        ("post", "delete"),
    ],
)
def test_other_users_conversations_answer_404_and_stay_as_they_are(
    conversation, outsider_client, method, name
):
    response = getattr(outsider_client, method)(_url(name, conversation), {"title": "Mine now"})

    assert response.status_code == 404
    conversation.refresh_from_db()
    assert (conversation.title, conversation.pinned) == ("Owner's chat", False)


@pytest.mark.parametrize("name", ["pin", "unpin"])
def test_pinning_takes_only_a_post(conversation, owner_client, name):
    assert owner_client.get(_url(name, conversation)).status_code == 405


def test_the_menu_takes_only_a_get(conversation, owner_client):
    assert owner_client.post(_url("menu", conversation)).status_code == 405


def test_the_sidebar_groups_conversations_by_pin_and_by_day(owner_client, owner, settings):
    settings.TIME_ZONE = "Asia/Seoul"
    now = timezone.now()
    days = {"Pinned one": 30, "Today's": 0, "Yesterday's": 1, "Last week's": 5, "Old one": 40}
    for title, days_ago in days.items():
        conversation = ConversationFactory(owner=owner, title=title, pinned=title == "Pinned one")
        Conversation.objects.filter(pk=conversation.pk).update(
            updated_at=now - timedelta(days=days_ago)
        )

    page = owner_client.get(reverse("conversations:index")).content.decode()

    sections = re.findall(
        r'data-group="(\w+)">\s*<h2 class="conversation-group-title">([^<]+)</h2>(.*?)</section>',
        page,
        re.S,
    )
    assert [(key, label) for key, label, _ in sections] == [
        ("pinned", "Pinned"),
        ("today", "Today"),
        ("yesterday", "Yesterday"),
        ("week", "Previous 7 days"),
        ("older", "Older"),
    ]
    titles = [re.findall(r'-title">([^<]+)</span>', body) for _key, _label, body in sections]
    assert titles == [
        ["Pinned one"],
        ["Today&#x27;s"],
        ["Yesterday&#x27;s"],
        ["Last week&#x27;s"],
        ["Old one"],
    ]
