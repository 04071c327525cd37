"""Feedback on replies: their owner's thumbs up or down, with an optional note.

Only the conversation's owner rates its replies, and only finished ones
(``Message.accepts_feedback``); views find the reply through the owner's conversation, so
anyone else's answers 404 before any of this runs.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.utils.translation import gettext, gettext_lazy

from conversations.models import Feedback, Message

RATINGS = {"up": Feedback.Rating.UP, "down": Feedback.Rating.DOWN}
NOT_RATED = gettext_lazy("Only a finished reply can be rated.")


class FeedbackRefused(Exception):
    """Feedback that cannot be stored; its message says why, for the user."""


def feedback_set(
    *, message: Message, user: AbstractBaseUser, rating: int, note: str = ""
) -> Feedback:
    """Store ``user``'s rating of the reply, with ``note``, replacing any they gave."""
    if not message.accepts_feedback:
        raise FeedbackRefused(str(NOT_RATED))
    note = note.strip()
    if len(note) > Feedback.NOTE_MAX_CHARS:
        raise FeedbackRefused(
            gettext("A note may have at most %(limit)s characters; this one has %(count)s.")
            % {"limit": Feedback.NOTE_MAX_CHARS, "count": len(note)}
        )
    feedback, _created = Feedback.objects.update_or_create(
        message=message, user=user, defaults={"rating": rating, "note": note}
    )
    return feedback


def feedback_clear(*, message: Message, user: AbstractBaseUser) -> None:
    Feedback.objects.filter(message=message, user=user).delete()


def feedback_toggle(*, message: Message, user: AbstractBaseUser, rating: int) -> Feedback | None:
    """A thumb pressed: the same rating again clears it; the other switches it, keeping the
    note. Answers the feedback now stored, if any."""
    current = Feedback.objects.filter(message=message, user=user).first()
    if current is not None and current.rating == rating:
        feedback_clear(message=message, user=user)
        return None
    note = current.note if current is not None else ""
    return feedback_set(message=message, user=user, rating=rating, note=note)
