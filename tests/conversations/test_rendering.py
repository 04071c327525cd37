from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.utils.safestring import SafeString

from conversations import rendering
from conversations.management.commands.build_highlight_css import build_css, css_path
from conversations.rendering import markdown_plain_text, render_markdown, render_plain

ALLOWED_TAGS = {
    *("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"),
    *("strong", "em", "del", "s", "code", "pre", "a", "span", "div"),
    *("ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td"),
}
DANGEROUS_TAGS = ("<script", "<img", "<iframe", "<svg", "<style", "<form", "<input", "<meta")


class _Parsed(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text_parts: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def attrs_of(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.elements if name == tag]


def assert_inert(html: str) -> None:
    """Only allowlisted tags, no event handlers or styles, and links only to safe schemes."""
    for tag, attrs in _Parsed(html).elements:
        assert tag in ALLOWED_TAGS, tag
        assert not any(name.startswith("on") for name in attrs), attrs
        assert "style" not in attrs
        if (href := attrs.get("href")) is not None:
            assert urlsplit(href).scheme in {"http", "https", "mailto"}, href
    for marker in DANGEROUS_TAGS:
        assert marker not in html.lower()


def test_render_markdown_returns_a_safe_string() -> None:
    assert isinstance(render_markdown("*hi*"), SafeString)


def test_headings_render_as_heading_tags() -> None:
    html = render_markdown("# Title\n\n### Part *one*")

    assert "<h1>Title</h1>" in html
    assert "<h3>Part <em>one</em></h3>" in html


def test_lists_render_and_ordered_lists_keep_their_start() -> None:
    html = render_markdown("- apple\n- pear\n\n3. three\n4. four")

    assert "<ul>\n<li>apple</li>\n<li>pear</li>\n</ul>" in html
    assert '<ol start="3">' in html


def test_emphasis_strikethrough_quote_and_rule_render() -> None:
    html = render_markdown("**bold** ~~gone~~\n\n> quoted\n\n---")

    assert "<strong>bold</strong>" in html
    assert "<s>gone</s>" in html
    assert "<blockquote>\n<p>quoted</p>\n</blockquote>" in html
    assert "<hr>" in html


def test_table_alignment_survives_as_classes_not_inline_styles() -> None:
    html = render_markdown("| L | C | R | N |\n|:--|:-:|--:|---|\n| 1 | 2 | 3 | 4 |")

    assert '<th class="align-left">L</th>' in html
    assert '<th class="align-center">C</th>' in html
    assert '<td class="align-right">3</td>' in html
    assert "<td>4</td>" in html
    assert "style" not in html


def test_links_open_in_a_new_tab_without_opener_or_referrer() -> None:
    parsed = _Parsed(
        render_markdown("[docs](https://example.com/a?b=1) and <mailto:me@example.com>")
    )

    assert parsed.attrs_of("a") == [
        {"href": "https://example.com/a?b=1", "target": "_blank", "rel": "noopener noreferrer"},
        {"href": "mailto:me@example.com", "target": "_blank", "rel": "noopener noreferrer"},
    ]


def test_relative_and_protocol_relative_links_stay_text() -> None:
    html = render_markdown("[home](/logout) [far](//evil.example/x) [top](#top)")

    assert "<a" not in html
    assert "[home](/logout)" in html


def test_fenced_python_is_highlighted_with_short_pygments_classes() -> None:
    html = render_markdown("```python\ndef add(a, b):\n    return a + b  # sum\n```")

    assert html.startswith(
        '<div class="codeblock"><div class="codeblock-bar">'
        '<span class="codeblock-lang">python</span></div>'
        '<pre class="highlight"><code>'
    )
    assert '<span class="k">def</span>' in html
    assert '<span class="nf">add</span>' in html
    assert '<span class="c1"># sum</span>' in html
    assert html.rstrip().endswith("</code></pre></div>")


def test_language_names_are_matched_case_insensitively_and_by_alias() -> None:
    assert '<span class="k">def</span>' in render_markdown("```Python\ndef f(): pass\n```")
    assert '<span class="kd">const</span>' in render_markdown("```js\nconst x = 1;\n```")


def test_unknown_language_falls_back_to_escaped_plain_text() -> None:
    html = render_markdown("```nosuchlang\n<b>x</b> & y\n```")

    assert '<span class="codeblock-lang">nosuchlang</span>' in html
    assert "<code>&lt;b&gt;x&lt;/b&gt; &amp; y\n</code>" in html


def test_fence_without_language_keeps_the_bar_with_an_empty_label() -> None:
    html = render_markdown("```\nplain <text>\n```")

    assert '<div class="codeblock-bar"><span class="codeblock-lang"></span></div>' in html
    assert "<code>plain &lt;text&gt;\n</code>" in html


def test_indented_code_uses_the_same_code_block_wrapper() -> None:
    html = render_markdown("Run:\n\n    make test\n")

    assert '<pre class="highlight"><code>make test\n</code></pre>' in html


def test_inline_code_stays_code_and_is_escaped() -> None:
    assert "<code>&lt;div&gt;</code>" in render_markdown("Use `<div>` here")


def test_language_label_from_the_info_string_is_escaped() -> None:
    html = render_markdown('```<img/src=x/onerror="alert(1)">\ncode\n```')

    assert_inert(html)
    assert "codeblock-lang" in html


def test_unclosed_fence_mid_stream_renders_the_code_so_far() -> None:
    html = render_markdown("Here you go:\n\n```python\ndef greet(name):\n    print(f'hi {na")

    assert "<p>Here you go:</p>" in html
    assert '<span class="k">def</span>' in html
    assert html.rstrip().endswith("</code></pre></div>")


def test_half_table_and_half_link_mid_stream_render_as_text() -> None:
    html = render_markdown("| a | b |\n| -")
    assert "<table" not in html
    assert "| a | b |" in html

    html = render_markdown("see [the docs](https://exa")
    assert "<a" not in html
    assert "[the docs](https://exa" in html


def test_every_prefix_of_a_streaming_reply_renders_inert_html() -> None:
    reply = (
        "## Plan\n\n1. Read **[the guide](https://example.com/guide)**\n2. ![chart](https://x.example/c.png)\n\n"
        "| Step | Time |\n|:-----|-----:|\n| build | 2 s |\n\n"
        "```python\nprint('<done>')\n```\n\n> Note: `x < y` ~~maybe~~.\n"
    )
    for end in range(len(reply) + 1):
        html = render_markdown(reply[:end])
        assert isinstance(html, SafeString)
        assert_inert(html)


def test_raw_html_is_shown_as_text() -> None:
    html = render_markdown("Click <b>here</b> <div class='x'>now</div>")

    assert "&lt;b&gt;here&lt;/b&gt;" in html
    assert "<b>" not in html
    assert "<div" not in html


def test_images_become_links_instead_of_loading() -> None:
    html = render_markdown("![a cat](https://evil.example/a.png) ![](https://evil.example/b.png)")

    assert_inert(html)
    assert [attrs["href"] for attrs in _Parsed(html).attrs_of("a")] == [
        "https://evil.example/a.png",
        "https://evil.example/b.png",
    ]
    assert ">a cat</a>" in html
    assert ">https://evil.example/b.png</a>" in html


def test_image_inside_a_link_becomes_the_link_text() -> None:
    html = render_markdown("[![build passing](https://ci.example/badge.svg)](https://ci.example)")

    assert _Parsed(html).attrs_of("a") == [
        {"href": "https://ci.example", "target": "_blank", "rel": "noopener noreferrer"}
    ]
    assert ">build passing</a>" in html


@pytest.mark.parametrize(
    ("markdown", "visible"),
    [
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),
        ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
        ('<a href="#" onclick="alert(1)">click</a>', "click"),
        ("<div onmouseover=alert(1)>hover</div>", "hover"),
        ("<iframe src='https://evil.example'></iframe>", "<iframe"),
        ("<svg onload=alert(1)>", "<svg onload=alert(1)>"),
        ("<style>body { display: none }</style>", "display: none"),
        ("<form action='https://evil.example'><input name=pw></form>", "<form"),
        ('<meta http-equiv="refresh" content="0;url=https://evil.example">', "refresh"),
        ("```\n<script>alert(1)</script>\n```", "<script>alert(1)</script>"),
    ],
)
def test_html_and_event_handlers_never_become_markup(markdown: str, visible: str) -> None:
    html = render_markdown(markdown)

    assert_inert(html)
    assert visible in _Parsed(html).text


@pytest.mark.parametrize(
    ("markdown", "visible"),
    [
        ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),
        ("[x](JaVaScRiPt:alert(1))", "[x](JaVaScRiPt:alert(1))"),
        ("[x](javascript&#58;alert(1))", "[x](javascript:alert(1))"),
        ("[x](<  javascript:alert(1)>)", "[x](<  javascript:alert(1)>)"),
        ("[x][ref]\n\n[ref]: javascript:alert(1)", "[x][ref]"),
        ("<javascript:alert(1)>", "<javascript:alert(1)>"),
        ("[x](vbscript:msgbox(1))", "[x](vbscript:msgbox(1))"),
        ("[x](data:text/html;base64,PHNjcmlwdD4=)", "[x](data:text/html;base64,PHNjcmlwdD4=)"),
        ("[x](data:image/png;base64,iVBORw0KGgo=)", "[x](data:image/png;base64,iVBORw0KGgo=)"),
        ("![x](data:image/png;base64,iVBORw0KGgo=)", "![x](data:image/png;base64,iVBORw0KGgo=)"),
        ("![x](javascript:alert(1))", "![x](javascript:alert(1))"),
        ("[x](file:///etc/passwd)", "[x](file:///etc/passwd)"),
    ],
)
def test_dangerous_link_schemes_stay_visible_text_never_links(markdown: str, visible: str) -> None:
    html = render_markdown(markdown)

    assert_inert(html)
    assert "<a" not in html
    assert visible in _Parsed(html).text


def test_sanitizer_is_the_final_guard_for_html_markdown_never_emits() -> None:
    dirty = (
        '<a href="javascript:alert(1)" onclick="x()" target="_self" rel="opener">a</a>'
        '<a href="/relative">b</a><img src="https://evil.example/p.png"><iframe></iframe>'
        '<script>alert(1)</script><p style="color: red" id="x">c</p>'
        '<span class="k codeblock evil">d</span><td style="text-align: left">e</td>'
    )
    html = rendering._SANITIZER.clean(dirty)

    assert_inert(html)
    assert "alert" not in html
    assert html.count('target="_blank"') == 2
    assert 'rel="noopener noreferrer"' in html
    assert 'href="' not in html
    assert "<p>c</p>" in html
    assert '<span class="k">d</span>' in html


def test_lone_surrogates_from_a_stream_do_not_crash_rendering() -> None:
    assert render_markdown("broken \ud83d emoji") == "<p>broken \ufffd emoji</p>\n"


def test_render_plain_escapes_html_and_keeps_line_breaks() -> None:
    html = render_plain("<b>hi</b>\r\nsecond & third\nlast")

    assert isinstance(html, SafeString)
    assert html == "&lt;b&gt;hi&lt;/b&gt;<br>second &amp; third<br>last"


def test_highlight_css_file_matches_the_build_command() -> None:
    assert css_path().read_text(encoding="utf-8") == build_css()


def test_highlight_css_has_light_and_dark_themes_without_backgrounds() -> None:
    css = build_css()

    assert ".highlight .k {" in css
    assert '[data-theme="dark"] .highlight .k {' in css
    media = css[css.index("@media (prefers-color-scheme: dark) {") :]
    assert ':root:not([data-theme="light"]) .highlight .k {' in media
    assert "background:" not in css
    assert "pre {" not in css


def test_dollar_math_renders_as_inline_and_display_mathml() -> None:
    html = render_markdown("Area $\\pi r^2$.\n\n$$\n\\frac{a}{b}\n$$")

    assert '<math display="inline"><mrow><mi>π</mi><msup>' in html
    assert '<math display="block"><mrow><mfrac>' in html
    assert "$" not in html


def test_bracket_math_keeps_its_backslashes_and_renders_as_mathml() -> None:
    html = render_markdown("So \\(a^2+b^2=c^2\\), and\n\\[\nx = 1\n\\]")

    assert '<math display="inline"><mrow><msup><mi>a</mi><mn>2</mn></msup>' in html
    assert '<math display="block"><mrow><mi>x</mi><mo>=</mo><mn>1</mn></mrow></math>' in html
    assert "\\(" not in html
    assert "(a^2" not in html


def test_prices_with_dollar_signs_stay_text() -> None:
    assert render_markdown("It costs $5 and $10, or $ 3 $.") == (
        "<p>It costs $5 and $10, or $ 3 $.</p>\n"
    )


def test_math_inside_code_stays_literal() -> None:
    html = render_markdown("`$x$` and `\\(y\\)`\n\n```\n$$z$$\n```")

    assert "<code>$x$</code>" in html
    assert "<code>\\(y\\)</code>" in html
    assert "$$z$$\n</code>" in html
    assert "<math" not in html


def test_invalid_latex_is_shown_as_escaped_code() -> None:
    assert render_markdown("$<b>^$") == "<p><code>&lt;b&gt;^</code></p>\n"


@pytest.mark.parametrize(
    "markdown",
    [
        "$\\href{javascript:alert(1)}{click}$",
        "$\\style{background:url(https://evil.example)}{x}$",
        "$\\color{red}{x}$",
        "$<script>alert(1)</script>$",
        "$$<img src=x onerror=alert(1)>$$",
        "$" + "{" * 5000 + "x" + "}" * 5000 + "$",
        "$\\text{<iframe>}$",
    ],
)
def test_hostile_latex_yields_inert_html(markdown: str) -> None:
    html = render_markdown(markdown)

    for tag, attrs in _Parsed(html).elements:
        assert tag in ALLOWED_TAGS | rendering._MATHML_TAGS, tag
        assert set(attrs) <= {"display", *rendering._MATHML_ATTRIBUTES.get(tag, ())}, attrs
    for marker in (*DANGEROUS_TAGS, "href=", "style=", "mathcolor=", "javascript:"):
        assert marker not in html.lower()


@pytest.mark.parametrize(
    ("markdown", "plain"),
    [
        ("Here is a **longer** answer", "Here is a longer answer"),
        ("# A *heading*", "A heading"),
        ("[a link](https://example.com) and `code`", "a link and code"),
        ("- one\n- two", "one\ntwo"),
        ("```python\nx = 1\n```", "x = 1"),
        ("<b>raw</b> html", "<b>raw</b> html"),
        ("first line\nsecond line", "first line second line"),
    ],
)
def test_markdown_as_plain_text_keeps_what_a_reader_sees(markdown, plain):
    assert markdown_plain_text(markdown) == plain
