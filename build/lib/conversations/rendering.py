"""Turn message text into safe HTML.

Model replies are untrusted Markdown: raw HTML in them is shown as text, code is highlighted
with Pygments, images become plain links, and the final HTML passes through nh3 with an
explicit allowlist before it is marked safe. User messages are shown as typed.
"""

import re
from collections.abc import Sequence
from functools import lru_cache

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import normalize_newlines
from markdown_it import MarkdownIt
from markdown_it.common.normalize_url import normalizeLinkText
from markdown_it.common.utils import escapeHtml, unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

_URL_SCHEMES = ("http", "https", "mailto")
_ALLOWED_URL = re.compile(f"^(?:{'|'.join(_URL_SCHEMES)}):", re.IGNORECASE)
# nh3 (Rust) cannot encode lone surrogates, which a JSON stream can still deliver.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_ALIGNMENT_CLASSES = {"align-left", "align-center", "align-right"}
# Short Pygments classes inside our own <pre class="highlight"><code>; highlight.css matches them.
_FORMATTER = HtmlFormatter(nowrap=True)


class _ChatMarkdown(MarkdownIt):
    def validateLink(self, url: str) -> bool:
        # Refused links stay visible as literal Markdown text instead of becoming dead anchors.
        return bool(_ALLOWED_URL.match(url))


def _language(info: str) -> str:
    words = unescapeAll(info).split(maxsplit=1)
    return words[0] if words else ""


@lru_cache(maxsize=256)
def _lexer(name: str) -> Lexer | None:
    try:
        return get_lexer_by_name(name, stripnl=False)
    except ClassNotFound:
        return None


def _codeblock(code: str, language: str) -> str:
    lexer = _lexer(language.lower()) if language else None
    body = highlight(code, lexer, _FORMATTER) if lexer else escapeHtml(code)
    return (
        '<div class="codeblock"><div class="codeblock-bar">'
        f'<span class="codeblock-lang">{escapeHtml(language)}</span></div>'
        f'<pre class="highlight"><code>{body}</code></pre></div>\n'
    )


def _render_fence(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    return _codeblock(token.content, _language(token.info))


def _render_code_block(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return _codeblock(tokens[idx].content, "")


def _render_image(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """Render an image as a link to it, so that reading a reply never fetches a remote URL."""
    token = tokens[idx]
    url = str(token.attrs["src"])
    label = escapeHtml(self.renderInlineAsText(token.children, options, env))
    if token.meta.get("inside_link"):
        return label
    return f'<a href="{escapeHtml(url)}">{label or escapeHtml(normalizeLinkText(url))}</a>'


def _mark_images_inside_links(state: StateCore) -> None:
    """Flag images such as badges, [![alt](img)](page), which cannot become nested links."""
    for block in state.tokens:
        depth = 0
        for token in block.children or ():
            if token.type in ("link_open", "link_close"):
                depth += token.nesting
            elif token.type == "image" and depth:
                token.meta["inside_link"] = True


def _alignment_to_class(state: StateCore) -> None:
    """Replace the table parser's inline text-align styles with classes, so no style is kept."""
    for token in state.tokens:
        if token.type in ("th_open", "td_open") and "style" in token.attrs:
            alignment = str(token.attrs.pop("style")).removeprefix("text-align:")
            token.attrSet("class", f"align-{alignment}")


_MARKDOWN = _ChatMarkdown("commonmark", {"html": False, "breaks": True}).enable(
    ["table", "strikethrough"]
)
_MARKDOWN.core.ruler.push("alignment_to_class", _alignment_to_class)
_MARKDOWN.core.ruler.push("mark_images_inside_links", _mark_images_inside_links)
_MARKDOWN.add_render_rule("fence", _render_fence)
_MARKDOWN.add_render_rule("code_block", _render_code_block)
_MARKDOWN.add_render_rule("image", _render_image)

_SANITIZER = nh3.Cleaner(
    tags={
        *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"),
        *("strong", "em", "del", "s", "code", "pre", "a", "span", "div"),
        *("ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td"),
    },
    attributes={"a": {"href"}, "ol": {"start"}},
    allowed_classes={
        "div": {"codeblock", "codeblock-bar"},
        "span": {"codeblock-lang", *(name for name in STANDARD_TYPES.values() if name)},
        "pre": {"highlight"},
        "th": _ALIGNMENT_CLASSES,
        "td": _ALIGNMENT_CLASSES,
    },
    url_schemes=set(_URL_SCHEMES),
    url_relative="deny",
    link_rel="noopener noreferrer",
    set_tag_attribute_values={"a": {"target": "_blank"}},
)


def render_markdown(text: str) -> SafeString:
    """Render an untrusted Markdown reply, complete or still streaming, as sanitized HTML."""
    html = _MARKDOWN.render(_LONE_SURROGATE.sub("\ufffd", text))
    return mark_safe(_SANITIZER.clean(html))


# A finished reply's text never changes, and pages show the same replies again and again:
# keeping the HTML of the most recently shown ones halves the cost of a conversation's page.
@lru_cache(maxsize=512)
def render_finished_markdown(text: str) -> SafeString:
    """``render_markdown`` for a reply whose text is final, kept for its next showing."""
    return render_markdown(text)


def render_plain(text: str) -> SafeString:
    """Render text as typed: escaped, with its line breaks kept."""
    return mark_safe(escape(normalize_newlines(text)).replace("\n", "<br>"))
