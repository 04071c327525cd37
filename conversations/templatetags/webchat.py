from django import template
from django.utils.html import json_script
from django.utils.safestring import SafeString
from django.utils.translation import gettext, gettext_noop

from conversations import frames, lookups
from conversations.models import Conversation, Message
from conversations.rendering import render_finished_markdown, render_markdown, render_plain
from conversations.upstream import finish_reasons

register = template.Library()

# What the page's scripts (static/webchat/*.js) show or announce; they look each up by its
# English words.
SCRIPT_WORDS = (
    gettext_noop("Copy"),
    gettext_noop("Copied"),
    gettext_noop("Not copied"),
    gettext_noop("Copy code"),
    gettext_noop("Copy message"),
    gettext_noop("Copied to the clipboard."),
    gettext_noop("The browser did not allow copying."),
    gettext_noop("Reply started."),
    gettext_noop("Reply finished."),
    gettext_noop("Reply stopped."),
    gettext_noop("Reply interrupted."),
    gettext_noop("Reply failed."),
    gettext_noop("Remove %(name)s"),
    gettext_noop("Thinking… %(seconds)s s"),
    gettext_noop("The message is too large to send. Shorten it, or send it in parts."),
    gettext_noop("This page has expired. Reload it, then send again."),
    gettext_noop("Too many requests. Wait a moment, then send again."),
    gettext_noop("The server had a problem and the message was not sent. Try again."),
    gettext_noop("The server could not be reached. Check your connection, then send again."),
)


@register.filter
def reply_html(message: Message) -> str:
    """A reply's text as HTML: rendered afresh while it streams, kept once it is final."""
    if message.is_active:
        return render_markdown(message.content)
    return render_finished_markdown(message.content)


@register.filter
def state_label(message: Message) -> str:
    return frames.state_label(message)


@register.filter
def finish_note(message: Message) -> str:
    """How a reply with an answer ended, when that is worth saying ("Cut short…")."""
    return finish_reasons.finish_note(message.finish_reason) if message.content else ""


@register.filter
def any_from_api(conversations) -> bool:
    return any(conversation.source == Conversation.Source.API for conversation in conversations)


@register.filter
def sidebar_sections(conversations) -> list[lookups.SidebarSection]:
    return lookups.sidebar_sections(list(conversations))


@register.filter
def plain(text: str) -> str:
    return render_plain(text)


@register.simple_tag
def script_words() -> SafeString:
    """The scripts' words in the page's language, as a JSON block (not a script: the CSP
    allows no inline script)."""
    return json_script({words: gettext(words) for words in SCRIPT_WORDS}, "script-words")
