"""Why a model stopped, in words: the finish reasons providers send, and empty replies.

Providers name the same reasons differently (OpenAI's ``content_filter``, Gemini's
``safety`` and ``recitation``, others' ``blocked``), and some invent their own; every
reason but a plain stop gets a sentence, and an unknown one says so.
"""

from django.utils.translation import gettext

from conversations.upstream.failures import Failure

# A reply that ends with no answer: stored as failed, with this code, and offered Retry.
EMPTY = "empty"

_ORDINARY = frozenset({"stop", "end_turn", "eos", "stop_sequence"})
_FILTERED = frozenset({"content_filter", "blocked", "blocklist", "prohibited_content", "spii"})


def finish_note(reason: str) -> str:
    """What a reply's footer says about how it ended; "" for an ordinary stop."""
    if not reason or reason in _ORDINARY:
        return ""
    if reason == "length":
        return gettext("Cut short by the token limit.")
    if reason in _FILTERED:
        return gettext("Stopped by the provider's content filter.")
    if reason == "safety":
        return gettext("Stopped by the provider for safety reasons.")
    if reason == "recitation":
        return gettext("Stopped by the provider: it was repeating protected material.")
    if reason in ("tool_calls", "function_call"):
        return gettext("The model asked to use a tool, which this chat does not offer.")
    if reason == "error":
        return gettext("The provider reported an error.")
    return gettext("The model stopped for a reason this chat does not know: “%(reason)s”.") % {
        "reason": reason
    }


def empty_reply_failure(reason: str, *, thought: bool) -> Failure:
    """Why a reply that ended without an answer is empty."""
    if reason == "length":
        if thought:
            message = gettext(
                "The model used up its token limit while thinking, before it answered."
            )
        else:
            message = gettext("The model reached its token limit before it answered.")
    elif reason in _FILTERED:
        message = gettext("The provider's content filter blocked this reply.")
    elif reason == "safety":
        message = gettext("The provider blocked this reply for safety reasons.")
    elif reason == "recitation":
        message = gettext("The provider blocked this reply: it would repeat protected material.")
    elif reason in ("tool_calls", "function_call"):
        message = gettext("The model asked to use a tool, which this chat does not offer.")
    elif reason and reason not in _ORDINARY:
        message = finish_note(reason)
    elif thought:
        message = gettext("The model thought, but then gave no answer.")
    else:
        message = gettext("The model sent an empty reply.")
    return Failure(EMPTY, message)
