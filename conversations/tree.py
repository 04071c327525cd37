"""The message tree of a conversation, and the branch of it that is shown.

Every message has a parent: the message it answers or follows. Regenerating a reply adds
a sibling of it (same question, another answer); editing a question adds a sibling of
the question. The conversation's ``current_leaf`` ends the branch that is shown and
forwarded to the model; switching versions moves it.

The tree's shape is read as ``(pk, parent_id)`` pairs in one query, which stays cheap
for thousands of messages; only the messages shown are loaded whole.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from conversations.models import Conversation, Message


@dataclass
class Shape:
    """The tree's structure: each message's parent, and each parent's children by age."""

    parents: dict[int, int | None] = field(default_factory=dict)
    children: dict[int | None, list[int]] = field(default_factory=lambda: defaultdict(list))

    def branch_to(self, leaf_id: int | None) -> list[int]:
        """The ids from the root down to ``leaf_id``."""
        ids: list[int] = []
        node = leaf_id
        while node is not None and node in self.parents:
            ids.append(node)
            node = self.parents[node]
        ids.reverse()
        return ids

    def newest_leaf_under(self, message_id: int) -> int:
        """Follow the newest child down from ``message_id`` to a leaf."""
        node = message_id
        while self.children.get(node):
            node = self.children[node][-1]
        return node

    def siblings(self, message_id: int) -> list[int]:
        """``message_id`` and its other versions, oldest first."""
        return self.children[self.parents[message_id]]

    @property
    def newest_id(self) -> int | None:
        return max(self.parents, default=None)


def shape_of(conversation_id: int) -> Shape:
    shape = Shape()
    pairs = Message.objects.filter(conversation_id=conversation_id).order_by("pk")
    for pk, parent_id in pairs.values_list("pk", "parent_id"):
        shape.parents[pk] = parent_id
        shape.children[parent_id].append(pk)
    return shape


def branch_ids(conversation: Conversation, shape: Shape | None = None) -> list[int]:
    """The ids of the messages shown, oldest first."""
    shape = shape or shape_of(conversation.pk)
    leaf = conversation.current_leaf_id
    if leaf not in shape.parents:
        leaf = shape.newest_id
    return shape.branch_to(leaf)


def branch(conversation: Conversation) -> list[Message]:
    """The messages shown, oldest first, with their attachments and feedback."""
    return messages_in_order(branch_ids(conversation))


def messages_in_order(ids: list[int]) -> list[Message]:
    messages = Message.objects.filter(pk__in=ids).prefetch_related("attachments", "feedback")
    found = messages.in_bulk()
    return [found[pk] for pk in ids if pk in found]


@dataclass(frozen=True)
class Versions:
    """Where a message stands among its versions: ``number`` of ``count``, with the
    ids of the versions before and after it (None at either end)."""

    number: int
    count: int
    previous_id: int | None
    next_id: int | None


def versions_of(shape: Shape, message_id: int) -> Versions:
    siblings = shape.siblings(message_id)
    index = siblings.index(message_id)
    return Versions(
        number=index + 1,
        count=len(siblings),
        previous_id=siblings[index - 1] if index > 0 else None,
        next_id=siblings[index + 1] if index + 1 < len(siblings) else None,
    )


def annotate_versions(messages: list[Message], shape: Shape) -> None:
    """Set ``message.versions`` on each message, for the "2 / 3" switch."""
    for message in messages:
        message.versions = versions_of(shape, message.pk)


def branch_end_id(current_leaf_id: int | None, *, conversation_id: int) -> int | None:
    """The shown branch's last message: the current leaf, or else the newest message."""
    if current_leaf_id is not None:
        return current_leaf_id
    newest = Message.objects.filter(conversation_id=conversation_id).order_by("-pk")
    return newest.values_list("pk", flat=True).first()


@dataclass
class Page:
    """A run of the shown branch: ``messages`` oldest first, and whether older ones exist."""

    messages: list[Message]
    has_older: bool

    @property
    def oldest_id(self) -> int | None:
        return self.messages[0].pk if self.messages else None


def branch_page(conversation: Conversation, *, size: int, before: int | None = None) -> Page:
    """The newest ``size`` messages of the shown branch (before message ``before``), each
    with its versions; the branch's last message is marked as its end."""
    shape = shape_of(conversation.pk)
    ids = branch_ids(conversation, shape)
    # A ``before`` off the branch (it changed since the page was shown): nothing older.
    end = len(ids) if before is None else ids.index(before) if before in ids else 0
    start = max(end - size, 0)
    messages = messages_in_order(ids[start:end])
    annotate_versions(messages, shape)
    if messages and end == len(ids):
        messages[-1].is_branch_end = True
    return Page(messages=messages, has_older=start > 0)
