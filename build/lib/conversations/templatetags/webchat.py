from django import template
from django.utils.html import json_script
from django.utils.safestring import SafeString
from django.utils.translation import gettext, gettext_noop

from conversations.models import Message
from conversations.rendering import render_finished_markdown, render_markdown, render_plain

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
)


@register.filter
def reply_html(message: Message) -> str:
    """A reply's text as HTML: rendered afresh while it streams, kept once it is final."""
    if message.is_active:
        return render_markdown(message.content)
    return render_finished_markdown(message.content)


@register.filter
def plain(text: str) -> str:
    return render_plain(text)


@register.simple_tag
def script_words() -> SafeString:
    """The scripts' words in the page's language, as a JSON block (not a script: the CSP
    allows no inline script)."""
    return json_script({words: gettext(words) for words in SCRIPT_WORDS}, "script-words")
