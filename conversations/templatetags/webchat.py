from django import template

from conversations.rendering import render_markdown, render_plain

register = template.Library()


@register.filter
def markdown(text: str) -> str:
    return render_markdown(text)


@register.filter
def plain(text: str) -> str:
    return render_plain(text)
