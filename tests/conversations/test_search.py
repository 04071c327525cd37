"""Full-text search of one's own conversations: what it finds, for whom, and with what input."""

import pytest
from django.db import connection
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from conversations import search_index
from conversations.models import Conversation, Message
from conversations.search import MAX_QUERY_CHARS, QueryRefused, search
from tests.factories import ConversationFactory, MessageFactory
from tests.generation_helpers import HTMX

pytestmark = pytest.mark.django_db


def _conversation(owner, title: str = "A chat", *texts: str) -> Conversation:
    conversation = ConversationFactory(owner=owner, title=title)
    for text in texts:
        MessageFactory(conversation=conversation, content=text)
    return conversation


def _found(owner, query: str) -> list[str]:
    return [result.conversation.title for result in search(owner, query)]


def test_it_finds_a_word_of_a_message(owner):
    _conversation(owner, "Travel", "We could take the night train to Busan.")
    _conversation(owner, "Cooking", "Add the garlic last.")

    assert _found(owner, "train") == ["Travel"]


def test_it_finds_words_by_their_first_letters_as_one_types(owner):
    _conversation(owner, "Greeting", "hello there")

    assert _found(owner, "hel") == ["Greeting"]
    assert _found(owner, "he") == ["Greeting"]
    assert _found(owner, "ello") == []  # the start of a word, not any part of it


def test_it_ignores_case(owner):
    _conversation(owner, "Shouting", "HELLO WORLD")
    _conversation(owner, "Whispering", "hello world")

    assert sorted(_found(owner, "Hello")) == ["Shouting", "Whispering"]
    assert sorted(_found(owner, "hELLO wOr")) == ["Shouting", "Whispering"]


def test_it_finds_korean_text(owner):
    _conversation(owner, "여행", "내일 서울에서 만나요. 안녕하세요!")
    _conversation(owner, "Other", "Nothing Korean here")

    assert _found(owner, "서울에서") == ["여행"]
    assert _found(owner, "안녕") == ["여행"]
    assert _found(owner, "서울") == ["여행"]  # a word's start, before its particle
    assert _found(owner, "여행") == ["여행"]  # the title


@pytest.mark.parametrize(
    "query", ["join", "os path", "bar", "py", "example", "bob", "snake", "case", "div", "14"]
)
def test_it_finds_words_inside_code_paths_and_addresses(owner, query):
    _conversation(owner, "Code", "os.path.join foo/bar.py bob@example.com snake_case <div> 3.14")

    assert _found(owner, query) == ["Code"]


def test_it_finds_titles(owner):
    _conversation(owner, "Quarterly budget review", "Let us start.")

    [result] = search(owner, "budg")
    assert result.conversation.title == "Quarterly budget review"
    assert result.title_html == "Quarterly <mark>budget</mark> review"
    assert result.snippet_html == ""


def test_every_word_must_be_found(owner):
    _conversation(owner, "Both", "red apples and green pears")
    _conversation(owner, "One", "red apples only")

    assert _found(owner, "apples pears") == ["Both"]
    assert sorted(_found(owner, "apples")) == ["Both", "One"]


def test_words_may_come_from_the_title_and_the_messages_only_separately(owner):
    _conversation(owner, "Budget", "apples")

    # The title has one word and a message the other: neither matches both.
    assert _found(owner, "budget apples") == []


def test_the_most_recently_active_conversation_comes_first(owner):
    older = _conversation(owner, "Older", "kiwi")
    _conversation(owner, "Newer", "kiwi")
    Conversation.objects.filter(pk=older.pk).update(updated_at=older.updated_at.replace(year=2000))

    assert _found(owner, "kiwi") == ["Newer", "Older"]


def test_the_excerpt_is_from_the_latest_matching_message_with_the_matches_marked(owner):
    _conversation(owner, "Chat", "first mango", "nothing here", "second mango, mangoes")

    [result] = search(owner, "mango")
    assert result.snippet_html == "second <mark>mango</mark>, <mark>mangoes</mark>"


def test_the_text_is_escaped_before_the_matches_are_marked(owner):
    _conversation(owner, "<b>Tags</b>", '<script>alert("x")</script> & <mark>hello</mark>')

    [result] = search(owner, "hello")
    assert result.snippet_html == (
        "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; "
        "&lt;mark&gt;<mark>hello</mark>&lt;/mark&gt;"
    )
    assert result.title_html == "&lt;b&gt;Tags&lt;/b&gt;"
    [tagged] = search(owner, "script")
    assert "<script" not in tagged.snippet_html


def test_a_long_message_is_cut_around_the_match(owner):
    text = " ".join(f"filler{i}" for i in range(100)) + " needle " + "tail " * 100
    _conversation(owner, "Long", text)

    [result] = search(owner, "needle")
    assert result.snippet_html.startswith("…filler")
    assert "<mark>needle</mark>" in result.snippet_html
    assert result.snippet_html.endswith("…")
    assert len(result.snippet_html) < 250


def test_other_users_conversations_never_appear(owner, outsider):
    _conversation(outsider, "Secret plans", "the secret password is swordfish")
    _conversation(owner, "Mine", "nothing to see")

    assert _found(owner, "swordfish") == []
    assert _found(owner, "secret") == []
    assert _found(outsider, "swordfish") == ["Secret plans"]


def test_it_searches_every_message_replaced_versions_included(owner):
    conversation = _conversation(owner, "Versions", "question")
    first = MessageFactory(conversation=conversation, role="assistant", content="first answer")
    # A regenerated reply: a sibling of the first; the first is no longer shown.
    MessageFactory(
        conversation=conversation, role="assistant", content="second answer", parent=first.parent
    )

    assert _found(owner, "first") == ["Versions"]


def test_it_follows_changes_to_messages_and_titles(owner):
    conversation = _conversation(owner, "Old title", "original words")
    message = conversation.messages.get()

    Message.objects.filter(pk=message.pk).update(content="edited words")
    Conversation.objects.filter(pk=conversation.pk).update(title="New title")

    assert _found(owner, "original") == []
    assert _found(owner, "edited") == ["New title"]
    assert _found(owner, "old") == []
    conversation.delete()
    assert _found(owner, "edited") == []
    assert _found(owner, "new") == []


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   ",
        '"',
        '""',
        "*",
        "...!?",
        "-",
        "^",
        "(",
        ")",
        ":",
        "'",
        "\\",
        "%",
        "_",
        "\x00",
        "&|!",
        "NEAR(",
        "🙂",
        "\u0301",
    ],
)
def test_punctuation_alone_finds_nothing_and_breaks_nothing(owner, query):
    _conversation(owner, "Chat", "hello world \" ' * ( ) : % _ - ^ 🙂")

    assert search(owner, query) == []


@pytest.mark.parametrize(
    "query",
    [
        'hello"',
        '"hello',
        "hello*",
        "hello:",
        "hello)",
        "(hello",
        "hello -",
        "+hello",
        "'hello'",
        "hello\\",
        "hello\x00",
        "hello %",
        "hello & | !",
    ],
)
def test_query_syntax_around_a_word_is_ignored(owner, query):
    _conversation(owner, "Chat", "hello world")

    assert _found(owner, query) == ["Chat"]


@pytest.mark.parametrize("operator", ["AND", "OR", "NOT", "NEAR"])
def test_operators_are_words_to_look_for(owner, operator):
    _conversation(owner, "Chat", "hello world")

    # Read as operators, these would find the conversation; as words, they are not in it.
    assert _found(owner, f"hello {operator} world") == []
    assert _found(owner, f"hello {operator} nothing") == []


def test_a_column_filter_is_two_words_to_look_for(owner):
    _conversation(owner, "Chat", "hello world")
    _conversation(owner, "Both", "content of a hello")

    assert _found(owner, "content:hello") == ["Both"]


def test_a_query_too_long_is_refused(owner):
    with pytest.raises(QueryRefused, match=f"at most {MAX_QUERY_CHARS} characters"):
        search(owner, "a" * (MAX_QUERY_CHARS + 1))


@hypothesis_settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=st.text(max_size=60))
def test_any_text_is_a_query_that_answers_without_error(owner, query):
    search(owner, query)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL keeps its indexes itself")
def test_triggers_dropped_by_a_table_rebuild_are_put_back_and_the_index_rebuilt(owner):
    conversation = _conversation(owner, "Chat", "before")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TRIGGER {search_index.MESSAGE_FTS}_insert")
    MessageFactory(conversation=conversation, content="during")
    assert _found(owner, "during") == []

    restored = search_index.sqlite_triggers_ensure(connection)

    assert restored == [f"{search_index.MESSAGE_FTS}_insert"]
    assert _found(owner, "during") == ["Chat"]
    MessageFactory(conversation=conversation, content="after")
    assert _found(owner, "after") == ["Chat"]
    assert search_index.sqlite_triggers_ensure(connection) == []


# --- The views ------------------------------------------------------------------------


def test_the_sidebar_searches_as_one_types_and_without_javascript(owner_client):
    page = owner_client.get(reverse("conversations:index")).content.decode()

    search_url = reverse("conversations:search")
    assert f'<form class="sidebar-search" role="search" method="get" action="{search_url}"' in page
    assert f'hx-get="{search_url}"' in page
    assert 'hx-trigger="input changed delay:250ms, search"' in page
    assert '<input type="search" id="sidebar-search-input" name="q"' in page


def test_results_as_one_types_come_as_a_partial(owner, owner_client):
    conversation = _conversation(owner, "Travel", "the night train to Busan")

    response = owner_client.get(reverse("conversations:search"), {"q": "trai"}, headers=HTMX)

    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in page
    assert f'href="{conversation.get_absolute_url()}"' in page
    assert "the night <mark>train</mark> to Busan" in page
    assert '<span id="search-status" hx-swap-oob="innerHTML">1 conversation found</span>' in page


def test_an_empty_query_clears_the_results(owner_client):
    response = owner_client.get(reverse("conversations:search"), {"q": " "}, headers=HTMX)

    assert 'class="search-results-body' not in response.content.decode()


def test_nothing_found_says_so(owner_client):
    response = owner_client.get(reverse("conversations:search"), {"q": "zebra"}, headers=HTMX)

    assert "No conversation matches “zebra”." in response.content.decode()


def test_the_search_page_shows_the_results_without_javascript(owner, owner_client):
    _conversation(owner, "Travel", "the night train to Busan")

    response = owner_client.get(reverse("conversations:search"), {"q": "busan"})

    page = response.content.decode()
    assert response.status_code == 200
    assert "<title>busan · Search · Webchat</title>" in page
    assert 'name="q" value="busan"' in page
    assert "the night train to <mark>Busan</mark>" in page
    assert 'id="conversation-list"' in page  # the sidebar, as on every chat page


def test_a_query_too_long_is_answered_with_a_message(owner_client):
    response = owner_client.get(reverse("conversations:search"), {"q": "a" * 500}, headers=HTMX)

    assert response.status_code == 200
    assert f"Search for at most {MAX_QUERY_CHARS} characters." in response.content.decode()


def test_the_results_page_never_shows_another_users_conversation(outsider, owner_client):
    _conversation(outsider, "Their secret", "swordfish")

    response = owner_client.get(reverse("conversations:search"), {"q": "swordfish"})

    assert "Their secret" not in response.content.decode()
    assert "No conversation matches" in response.content.decode()


def test_an_excerpt_of_a_reply_is_plain_text(owner, conversation):
    MessageFactory(
        conversation=conversation,
        role="assistant",
        content="## Steps\n\nUse **asyncio.gather** with [the docs](https://example.com).",
    )

    (result,) = search(owner, "gather")

    assert "**" not in result.snippet_html
    assert "##" not in result.snippet_html
    assert "<mark>gather</mark>" in result.snippet_html
