"""Fills a fresh Webchat database for a benchmark run; prints what it made as JSON.

Run in the server's environment (``python -m benchmarks.seed ...``) before the server
starts: users share one password hash (hashing is deliberately slow), and conversations are
made in bulk, so that preparing hundreds of them takes a second.
"""

import argparse
import itertools
import json
import os

import django

ASSISTANT_REPLY = """Answer {number}. Here is a short answer with the usual Markdown in it.

1. **First**, read the *settings* that matter.
2. Then run the command below and compare the numbers.

```python
def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return (ordered[middle - 1] + ordered[middle]) / 2 if len(ordered) % 2 == 0 else ordered[middle]
```

That is all: `median` works on any list of numbers, see [the docs](https://example.com/docs).
"""
READER_CONVERSATIONS = 20
USER_QUESTION = "How do I compute a median in Python, and what should I check first?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--conversations-per-user", type=int, required=True)
    parser.add_argument("--model", action="append", required=True, help="one per kind")
    parser.add_argument("--long-messages", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webchat.settings")
    django.setup()
    print(json.dumps(seed(args)))


def seed(args: argparse.Namespace) -> dict:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from api.models import ApiKey
    from conversations.models import Conversation

    user_model = get_user_model()
    password_hash = make_password(args.password)
    with transaction.atomic():
        users = user_model.objects.bulk_create(
            user_model(username=f"bench{index:03d}", password=password_hash)
            for index in range(args.users)
        )
        users = list(user_model.objects.filter(username__startswith="bench").order_by("pk"))
        conversations: dict[str, dict[str, list[int]]] = {}
        for model in args.model:
            Conversation.objects.bulk_create(
                Conversation(owner=user, title=f"Bench {model} {number}", model=model)
                for user in users
                for number in range(args.conversations_per_user)
            )
            conversations[model] = {
                user.username: list(
                    Conversation.objects.filter(owner=user, model=model)
                    .order_by("pk")
                    .values_list("pk", flat=True)
                )
                for user in users
            }
        # Someone with a few conversations in the sidebar opens one, and then a long one.
        reader = user_model.objects.create(username="reader", password=password_hash)
        Conversation.objects.bulk_create(
            Conversation(owner=reader, title=f"Earlier question {number}", model=args.model[0])
            for number in range(READER_CONVERSATIONS - 2)
        )
        long_id = _conversation_with_history(reader, args.model[0], args.long_messages)
        short_id = _conversation_with_history(reader, args.model[0], 2)
        # The API stage's developer: the first user, with a personal key.
        _api_key, key = ApiKey.issue(owner=users[0], name="Benchmark")
    return {
        "api_key": key,
        "users": [user.username for user in users],
        "reader": reader.username,
        "conversations": conversations,
        "long_conversation": long_id,
        "short_conversation": short_id,
    }


def _conversation_with_history(owner, model: str, messages: int) -> int:
    """A conversation of ``messages`` messages (questions and Markdown answers, alternating)."""
    from django.utils import timezone

    from conversations.models import Conversation, Message

    conversation = Conversation.objects.create(
        owner=owner, title=f"Bench history of {messages}", model=model
    )
    now = timezone.now()
    created = Message.objects.bulk_create(
        Message(
            conversation=conversation,
            role=Message.Role.USER if index % 2 == 0 else Message.Role.ASSISTANT,
            # Each answer differs, as real ones do: none is rendered from another's HTML.
            content=USER_QUESTION if index % 2 == 0 else ASSISTANT_REPLY.format(number=index),
            status=Message.Status.COMPLETE,
            model="" if index % 2 == 0 else model,
            finish_reason="" if index % 2 == 0 else "stop",
            prompt_tokens=None if index % 2 == 0 else 20,
            completion_tokens=None if index % 2 == 0 else 120,
            total_tokens=None if index % 2 == 0 else 140,
            time_to_first_token_ms=None if index % 2 == 0 else 250,
            completed_at=now,
        )
        for index in range(messages)
    )
    # Each message follows the one before it: one branch, as a plain back-and-forth makes.
    for parent, child in itertools.pairwise(created):
        child.parent_id = parent.pk
    Message.objects.bulk_update(created[1:], ["parent"], batch_size=500)
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=created[-1])
    return conversation.pk


if __name__ == "__main__":
    main()
