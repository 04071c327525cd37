"""Search stays fast for a heavy user: 5,000 conversations and 100,000 messages.

The proof is the query plan (the full-text index drives both queries); the timings are
printed, never asserted (run with ``-s`` to read them).
"""

import random
import statistics
import string
import time

import pytest
from django.db import connection

from conversations.models import Conversation, Message
from conversations.search import match_queries, query_terms, search
from conversations.search_index import MESSAGE_FTS, MESSAGE_INDEX, TITLE_FTS, TITLE_INDEX
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

CONVERSATIONS = 5_000
MESSAGES_EACH = 20
VOCABULARY = 20_000
RARE = "zanzibarian"  # in three of the heavy user's messages, and one of someone else's
RARE_TITLE = "quokkas"  # in two of the heavy user's titles


@pytest.fixture
def heavy_user():
    rng = random.Random(20240601)
    words = sorted(
        {
            "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 10)))
            for _ in range(VOCABULARY)
        }
        - {RARE, RARE_TITLE}
    )
    user = UserFactory(username="heavy")
    someone_else = UserFactory(username="someone-else")

    def text(count: int) -> str:
        return " ".join(rng.choices(words, k=count))

    titles = [text(4) for _ in range(CONVERSATIONS)]
    titles[10] += f" {RARE_TITLE}"
    titles[4000] = f"{RARE_TITLE.capitalize()} {titles[4000]}"
    started = time.perf_counter()
    conversations = Conversation.objects.bulk_create(
        [Conversation(owner=user, title=title, model="m") for title in titles]
        + [Conversation(owner=someone_else, title="Theirs", model="m")],
        batch_size=1000,
    )
    messages = [
        Message(
            conversation=conversation,
            role="user" if number % 2 == 0 else "assistant",
            content=text(rng.randint(5, 80)),
        )
        for conversation in conversations[:CONVERSATIONS]
        for number in range(MESSAGES_EACH)
    ]
    for index in (123, 45_678, 99_001):
        messages[index].content += f" {RARE} spice"
    messages.append(Message(conversation=conversations[-1], content=f"{RARE} secret"))
    Message.objects.bulk_create(messages, batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
        if connection.vendor == "postgresql":
            # What autovacuum does soon after: move the freshly inserted entries from the
            # GIN indexes' pending lists (scanned in full by every query) into the indexes.
            for index in (MESSAGE_INDEX, TITLE_INDEX):
                cursor.execute("SELECT gin_clean_pending_list(%s::regclass)", [index])
    inserted = time.perf_counter() - started
    print(
        f"\n[{connection.vendor}] inserted {CONVERSATIONS:,} conversations and "
        f"{len(messages):,} messages, index kept by the database, in {inserted:.1f} s"
    )
    return user


def _plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            return "\n".join(row[-1] for row in cursor.fetchall())
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def _milliseconds(user, query: str, runs: int = 7) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        search(user, query)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def test_a_heavy_users_search_uses_the_full_text_index_and_stays_fast(heavy_user):
    title_query, message_query = match_queries(
        connection.vendor, heavy_user.pk, query_terms(RARE[:5]), 20
    )
    title_plan, message_plan = _plan(*title_query), _plan(*message_query)
    print(f"\ntitles:\n{title_plan}\nmessages:\n{message_plan}")
    if connection.vendor == "sqlite":
        assert f"SCAN {TITLE_FTS} VIRTUAL TABLE INDEX" in title_plan
        assert f"SCAN {MESSAGE_FTS} VIRTUAL TABLE INDEX" in message_plan
    else:
        assert f"Bitmap Index Scan on {TITLE_INDEX}" in title_plan
        assert f"Bitmap Index Scan on {MESSAGE_INDEX}" in message_plan

    found = search(heavy_user, RARE)
    assert len(found) == 3
    assert all(result.conversation.owner_id == heavy_user.pk for result in found)
    assert all(f"<mark>{RARE}</mark>" in result.snippet_html for result in found)
    assert len(search(heavy_user, RARE_TITLE)) == 2

    queries = [RARE, RARE[:3], f"{RARE} spice", RARE_TITLE, "ab", "abc", "a", "nothingmatches"]
    timings = {query: _milliseconds(heavy_user, query) for query in queries}
    print(f"\n[{connection.vendor}] median search time over 7 runs:")
    for query, milliseconds in timings.items():
        matches = len(search(heavy_user, query, 50))
        print(f"  {query!r:>22}: {milliseconds:7.1f} ms ({matches} of at most 50 results)")
