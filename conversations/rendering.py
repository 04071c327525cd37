"""Turn message text into safe HTML.

Model replies are untrusted Markdown: raw HTML in them is shown as text, code is highlighted
with Pygments, images become plain links, math (``$…$``, ``$$…$$``, ``\\(…\\)``, ``\\[…\\]``)
becomes MathML, and the final HTML passes through nh3 with an explicit allowlist before it is
marked safe. User messages are shown as typed.
"""

import re
from collections.abc import Callable, Sequence
from functools import lru_cache

import nh3
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import normalize_newlines
from latex2mathml.converter import convert as latex_to_mathml
from markdown_it import MarkdownIt
from markdown_it.common.normalize_url import normalizeLinkText
from markdown_it.common.utils import escapeHtml, unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.dollarmath import dollarmath_plugin
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


def _codeblock_start(language: str) -> str:
    return (
        '<div class="codeblock"><div class="codeblock-bar">'
        f'<span class="codeblock-lang">{escapeHtml(language)}</span></div>'
        '<pre class="highlight"><code>'
    )


_CODEBLOCK_END = "</code></pre></div>\n"


# Longer code is shown plain: highlighting it would cost seconds and bloat its HTML sevenfold.
HIGHLIGHT_MAX_CHARS = 64 * 1024


def _codeblock(code: str, language: str) -> str:
    lexer = _lexer(language.lower()) if language and len(code) <= HIGHLIGHT_MAX_CHARS else None
    body = highlight(code, lexer, _FORMATTER) if lexer else escapeHtml(code)
    return f"{_codeblock_start(language)}{body}{_CODEBLOCK_END}"


def _plain_codeblock(code: str, language: str) -> str:
    return f"{_codeblock_start(language)}{escapeHtml(code)}{_CODEBLOCK_END}"


def _render_fence(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    return _codeblock(token.content, _language(token.info))


def _render_code_block(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return _codeblock(tokens[idx].content, "")


def _render_plain_fence(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    return _plain_codeblock(token.content, _language(token.info))


def _render_plain_code_block(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return _plain_codeblock(tokens[idx].content, "")


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


def _render_table_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    """A table in a wrapper of its own that scrolls sideways, so its cells need not break
    words (identifiers, paths) to fit the page."""
    return '<div class="table-scroll">' + self.renderToken(tokens, idx, options, env)


def _render_table_close(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return self.renderToken(tokens, idx, options, env) + "</div>"


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


@lru_cache(maxsize=1024)
def _mathml(tex: str, display: bool) -> str:
    try:
        return latex_to_mathml(tex, display="block" if display else "inline")
    # latex2mathml raises its own errors, and RecursionError on deep nesting, for bad input.
    except Exception:
        return f"<code>{escapeHtml(tex)}</code>"


def _render_math_inline(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return _mathml(tokens[idx].content.strip(), False)


def _render_math_display(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return _mathml(tokens[idx].content.strip(), True)


def _math_brackets(
    opener: str, closer: str, token_type: str
) -> Callable[[StateInline, bool], bool]:
    def rule(state: StateInline, silent: bool) -> bool:
        if not state.src.startswith(opener, state.pos):
            return False
        end = state.src.find(closer, state.pos + 2)
        if end < 0 or not state.src[state.pos + 2 : end].strip():
            return False
        if not silent:
            token = state.push(token_type, "math", 0)
            token.content = state.src[state.pos + 2 : end]
            token.markup = opener
        state.pos = end + 2
        return True

    return rule


def _chat_markdown(*, highlighted: bool = True) -> MarkdownIt:
    md = _ChatMarkdown("commonmark", {"html": False, "breaks": True}).enable(
        ["table", "strikethrough"]
    )
    # Prices such as "$5 and $10" stay text: no space inside the dollars, no digit outside.
    dollarmath_plugin(md, allow_space=False, allow_digits=False, double_inline=True)
    # \\( and \\[ come before the escape rule, which would otherwise eat their backslashes.
    md.inline.ruler.before("escape", "math_parens", _math_brackets("\\(", "\\)", "math_inline"))
    md.inline.ruler.before(
        "escape", "math_brackets", _math_brackets("\\[", "\\]", "math_inline_double")
    )
    # Display math is parsed inside paragraphs only: a paragraph cannot outgrow a blank line, so
    # an unclosed $$ never swallows the blocks after it, which keeps streamed blocks final.
    md.block.ruler.disable("math_block")
    md.core.ruler.push("alignment_to_class", _alignment_to_class)
    md.core.ruler.push("mark_images_inside_links", _mark_images_inside_links)
    md.add_render_rule("fence", _render_fence if highlighted else _render_plain_fence)
    md.add_render_rule(
        "code_block", _render_code_block if highlighted else _render_plain_code_block
    )
    md.add_render_rule("image", _render_image)
    md.add_render_rule("table_open", _render_table_open)
    md.add_render_rule("table_close", _render_table_close)
    md.add_render_rule("math_inline", _render_math_inline)
    md.add_render_rule("math_inline_double", _render_math_display)
    return md


_MARKDOWN = _chat_markdown()
# For text that is still growing: code shows as it will, without the cost of highlighting.
_PLAIN_CODE_MARKDOWN = _chat_markdown(highlighted=False)

# What latex2mathml emits for common LaTeX, minus links (\\href), styles and colours.
_MATHML_ATTRIBUTES = {
    "math": {"display"},
    "mi": {"mathvariant"},
    "mo": {"stretchy", "fence", "form", "accent", "minsize", "maxsize", "lspace", "rspace"},
    "mover": {"accent"},
    "munder": {"accentunder"},
    "mfrac": {"linethickness"},
    "mspace": {"width", "height", "depth", "linebreak"},
    "mpadded": {"width", "height", "depth", "lspace", "voffset"},
    "mstyle": {"displaystyle", "scriptlevel"},
    "menclose": {"notation"},
    "mtable": {"columnalign", "columnlines", "rowlines", "rowspacing", "columnspacing"},
    "mtd": {"columnalign"},
}
_MATHML_TAGS = {
    *("math", "mrow", "mi", "mn", "mo", "mtext", "mspace", "mpadded", "mphantom", "mstyle"),
    *("msup", "msub", "msubsup", "mover", "munder", "munderover", "mfrac", "msqrt", "mroot"),
    *("mtable", "mtr", "mtd", "menclose"),
}

_SANITIZER = nh3.Cleaner(
    tags={
        *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"),
        *("strong", "em", "del", "s", "code", "pre", "a", "span", "div"),
        *("ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td"),
        *_MATHML_TAGS,
    },
    attributes={"a": {"href"}, "ol": {"start"}, **_MATHML_ATTRIBUTES},
    allowed_classes={
        "div": {"codeblock", "codeblock-bar", "table-scroll"},
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


# Inline tokens whose content is text a reader sees.
_TEXT_TOKENS = {"text", "code_inline", "math_inline", "math_inline_double"}


def markdown_plain_text(text: str) -> str:
    """What a reader of ``text`` as Markdown sees, as plain text: emphasis, links, headings,
    list markers and code fences gone, one line per block; for titles and excerpts."""
    lines: list[str] = []
    for token in _PLAIN_CODE_MARKDOWN.parse(_LONE_SURROGATE.sub("\ufffd", text)):
        if token.type in ("fence", "code_block"):
            lines.append(token.content.strip())
        elif token.type == "inline":
            pieces = [
                child.content if child.type in _TEXT_TOKENS else " "
                for child in token.children or []
                if child.type in _TEXT_TOKENS or child.type in ("softbreak", "hardbreak")
            ]
            lines.append("".join(pieces).strip())
    return "\n".join(line for line in lines if line)
