"""Full-text search of one user's conversations: their titles and their messages' text.

The database finds the matches through its full-text index (search_index.py: FTS5 on
SQLite, ``tsvector`` with GIN on PostgreSQL). Results are the most recently active matching
conversations, each with its title and, when a message matched, an excerpt of the latest
matching one. Every message counts, versions that were replaced included.

A query is reduced to its words (runs of letters and digits), each looked for as the start
of a word, so "hel" finds "hello" while typing; nothing typed can be read as query syntax.
"""

import re
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from conversations.models import Conversation, Message
from conversations.rendering import markdown_plain_text
from conversations.search_index import MESSAGE_FTS, TITLE_FTS, postgresql_document

MAX_QUERY_CHARS = 200
MAX_TERMS = 8
SNIPPET_CHARS = 160
# How much text an excerpt shows before its first match.
SNIPPET_LEAD_CHARS = 50

_WORD = re.compile(r"[^\W_]+")
# SQL and its parameters.
Query = tuple[str, list]


class QueryRefused(Exception):
    """A query that cannot be run; ``str(error)`` is shown to the user."""


@dataclass(frozen=True)
class SearchResult:
    conversation: Conversation
    # Escaped text with the matches in <mark>; the snippet is empty when only the title matched.
    title_html: SafeString
    snippet_html: SafeString


def query_terms(query: str) -> list[str]:
    """The words of ``query``, lowercased, without repeats: what is looked for."""
    terms: list[str] = []
    for term in _WORD.findall(query.lower()):
        if term not in terms:
            terms.append(term)
    return terms[:MAX_TERMS]


def search(user: AbstractBaseUser, query: str, limit: int = 20) -> list[SearchResult]:
    """The user's conversations whose title or messages contain every word of ``query``
    (as the start of a word), most recently active first."""
    if len(query) > MAX_QUERY_CHARS:
        raise QueryRefused(
            gettext("Search for at most %(limit)s characters.") % {"limit": MAX_QUERY_CHARS}
        )
    terms = query_terms(query)
    if not terms:
        return []
    title_query, message_query = match_queries(connection.vendor, user.pk, terms, limit)
    with connection.cursor() as cursor:
        cursor.execute(*title_query)
        titled = [row[0] for row in cursor.fetchall()]
        cursor.execute(*message_query)
        messages = dict(cursor.fetchall())
    latest_message = {conversation_id: None for conversation_id in titled}
    latest_message.update(messages)
    conversations = list(
        Conversation.objects.filter(owner=user, pk__in=latest_message)
        .only("pk", "title", "updated_at", "pinned")
        .order_by("-updated_at", "-pk")[:limit]
    )
    wanted = [latest_message[c.pk] for c in conversations if latest_message[c.pk] is not None]
    texts = {
        pk: markdown_plain_text(content) if role == Message.Role.ASSISTANT else content
        for pk, role, content in Message.objects.filter(pk__in=wanted).values_list(
            "pk", "role", "content"
        )
    }
    pattern = _match_pattern(terms)
    return [
        SearchResult(
            conversation=conversation,
            title_html=_highlighted(conversation.title, pattern),
            snippet_html=_snippet(texts.get(latest_message[conversation.pk], ""), pattern),
        )
        for conversation in conversations
    ]


def match_queries(vendor: str, owner_id: int, terms: list[str], limit: int) -> tuple[Query, Query]:
    """The SQL (and its parameters) finding the owner's ``limit`` most recently active
    conversations whose title matches (rows: id), and those with a matching message
    (rows: id, the latest matching message's id). Both are driven by the full-text index."""
    if vendor == "postgresql":
        # Each term a quoted lexeme and a prefix; terms are ANDed. The expressions are
        # those of the GIN indexes, so that the indexes are used.
        tsquery = " & ".join("'{}':*".format(term.replace("'", "''")) for term in terms)
        titles = (
            "SELECT id FROM conversations_conversation "
            f"WHERE {postgresql_document('title')} @@ to_tsquery('simple', %s) "
            "AND owner_id = %s "
            "ORDER BY updated_at DESC, id DESC LIMIT %s",
            [tsquery, owner_id, limit],
        )
        messages = (
            "SELECT c.id, MAX(m.id) FROM conversations_message m "
            "JOIN conversations_conversation c ON c.id = m.conversation_id "
            f"WHERE {postgresql_document('m.content')} @@ to_tsquery('simple', %s) "
            "AND c.owner_id = %s "
            "GROUP BY c.id ORDER BY c.updated_at DESC, c.id DESC LIMIT %s",
            [tsquery, owner_id, limit],
        )
        return titles, messages
    # Each term a quoted string (never an operator) and a prefix; terms are ANDed.
    match = " ".join(f'"{term}"*' for term in terms)
    titles = (
        f"SELECT c.id FROM {TITLE_FTS} "
        f"JOIN conversations_conversation c ON c.id = {TITLE_FTS}.rowid "
        f"WHERE {TITLE_FTS} MATCH %s AND c.owner_id = %s "
        "ORDER BY c.updated_at DESC, c.id DESC LIMIT %s",
        [match, owner_id, limit],
    )
    messages = (
        f"SELECT c.id, MAX(m.id) FROM {MESSAGE_FTS} "
        f"JOIN conversations_message m ON m.id = {MESSAGE_FTS}.rowid "
        "JOIN conversations_conversation c ON c.id = m.conversation_id "
        f"WHERE {MESSAGE_FTS} MATCH %s AND c.owner_id = %s "
        "GROUP BY c.id ORDER BY c.updated_at DESC, c.id DESC LIMIT %s",
        [match, owner_id, limit],
    )
    return titles, messages


def _match_pattern(terms: list[str]) -> re.Pattern:
    """Whole words that start with a term."""
    alternatives = "|".join(re.escape(term) for term in terms)
    return re.compile(rf"(?<![^\W_])(?:{alternatives})[^\W_]*", re.IGNORECASE)


def _highlighted(text: str, pattern: re.Pattern) -> SafeString:
    """``text`` escaped, each match wrapped in <mark>."""
    parts, end = [], 0
    for match in pattern.finditer(text):
        parts.append(escape(text[end : match.start()]))
        parts.append(format_html("<mark>{}</mark>", match.group()))
        end = match.end()
    parts.append(escape(text[end:]))
    return mark_safe("".join(parts))  # every part was escaped above


def _snippet(text: str, pattern: re.Pattern) -> SafeString:
    """A short excerpt of ``text`` around its first match, matches marked."""
    text = " ".join(text.split())
    if not text:
        return SafeString("")
    first = pattern.search(text)
    start = 0
    if first is not None and first.start() > SNIPPET_LEAD_CHARS:
        start = first.start() - SNIPPET_LEAD_CHARS
        # Begin at a word, not inside one.
        space = text.find(" ", start, first.start())
        start = space + 1 if space != -1 else start
    end = min(len(text), start + SNIPPET_CHARS)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start else end
    excerpt = _highlighted(text[start:end], pattern)
    return format_html("{}{}{}", "…" if start > 0 else "", excerpt, "…" if end < len(text) else "")
