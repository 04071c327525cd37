import random
import re
from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from conversations import markdown_stream
from conversations.markdown_stream import MarkdownUpdate, StreamingMarkdown
from conversations.rendering import render_markdown

CORPUS = [
    "Just one line.",
    "# Title\n\nA paragraph with **bold**, *em*, _under_, ~~gone~~ and `code`.\n",
    "Line one\nline two with a hard break  \nline three\n\n## Part *two*\nText right after.",
    "Setext heading\n==============\n\nAnother\n---\n\nplain text\n",
    "- tight\n- list\n- items\n\n1. loose\n\n2. list\n\n3. items\n",
    "- outer\n  - inner *one*\n  - inner two\n    1. deep\n- outer again\n\nAfter the list.",
    "* star list\n+ plus list\n- dash list\n\n10. starts at ten\n11. eleven\n",
    "Intro:\n- interrupting list\n- second\nlazy continuation\n\nend",
    "| Name | Qty | Price |\n|:-----|:---:|------:|\n| apple | 1 | $5 |\n| pear | 2 | $10 |\n\n"
    "after the table\n",
    "Text before\n| a | b |\n|---|---|\n| 1 | 2 |\nrow without pipes\n\nnext",
    "```python\ndef f(x):\n    return x ** 2  # square\n```\n\nAnd then text.\n",
    "```\nno language <b>here</b>\n```\n~~~js\nconst a = `tpl`;\n~~~\n",
    'Unclosed fence at the end:\n\n```rust\nfn main() {\n    println!("hi");\n}\n',
    "> a quote\n> with *two* lines\nand a lazy one\n\n> > nested\n\nout",
    "    indented code\n    more code\n\nparagraph\n",
    "Math: $x^2 + y^2$ and \\(a+b\\), display:\n\n$$\n\\frac{1}{2}\n$$\n\n\\[\n\\sqrt{2}\n\\]\n",
    "Prices: costs $5 and $10, not math. But $e^{i\\pi}$ is.\n",
    "Links: [docs](https://example.com/docs), <https://example.com>, "
    "![img](https://example.com/i.png) and [bad](javascript:alert(1)).\n",
    "[ref]: https://example.com/ref\n\nUse [the ref][ref] and [ref].\n",
    "Raw <script>alert(1)</script> & entities &amp; &copy; \\*escaped\\*\n",
    "***\n\n---\n\n___\n\nrules above",
    "1. Install:\n   ```bash\n   pip install x\n   ```\n2. Run:\n\n   ```\n   x --help\n   ```\n",
    "Nested **bold *and em* here** and *em **bold** em*.\n\n**unclosed bold at end",
    "Tab\tseparated and trailing spaces   \n\n\n\nmany blank lines above\n",
    "## Heading with `code` and $math$ ##\n#not a heading\n#\n",
]

RICH_REPLY = (
    "## Plan for **the week**\n\n"
    "Some *emphasis*, __strong__, ~~strike~~, `inline code` and a "
    "[link](https://example.com/a_b?c=d) here.\n\n"
    "| Step | Time |\n|:-----|-----:|\n| build | 2 s |\n| test | 5 s |\n\n"
    "```python\ndef f(x):\n    return x * 2\n```\n\n"
    "### Math\n\nInline $a^2+b^2$ and \\(c^2\\), then:\n\n$$\n\\sum_{i=0}^n i\n$$\n\n"
    "- item **one**\n- item `two`\n  1. nested\n\n"
    "> quoted *text*\n\n"
    "Final line with ***both*** styles.\n"
)


class _Text(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.feed(html)
        self.close()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible(html: str) -> str:
    return "".join(_Text(html).parts)


def stream(text: str, ends: list[int]) -> tuple[list[MarkdownUpdate], MarkdownUpdate]:
    renderer = StreamingMarkdown()
    updates = [renderer.update(text[:end]) for end in ends]
    return updates, renderer.finish()


def finished_html(updates: list[MarkdownUpdate], final: MarkdownUpdate) -> str:
    return "".join(update.finished_html for update in [*updates, final])


class Page:
    """What a browser keeps, following the module's DOM contract."""

    def __init__(self) -> None:
        self.finished: list[str] = []
        self.count = 0
        self.open = ""

    def apply(self, update: MarkdownUpdate) -> None:
        self.finished.append(update.finished_html)
        self.count = update.finished_count
        if update.open_html is None:
            head, tail = self.open.rsplit("</code>", 1)
            self.open = f"{head}{update.code_html}</code>{tail}"
        else:
            self.open = update.open_html


@pytest.mark.parametrize("text", CORPUS)
def test_streamed_character_by_character_the_finished_html_equals_a_full_render(
    text: str,
) -> None:
    updates, final = stream(text, list(range(1, len(text) + 1)))

    assert finished_html(updates, final) == render_markdown(text)
    assert final.open_html == ""


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.sampled_from([*CORPUS, RICH_REPLY]), st.lists(st.floats(0, 1), max_size=12))
def test_streamed_at_random_split_points_the_finished_html_equals_a_full_render(
    text: str, fractions: list[float]
) -> None:
    ends = sorted({int(fraction * len(text)) for fraction in fractions} | {len(text)})

    updates, final = stream(text, ends)

    assert finished_html(updates, final) == render_markdown(text)


class _TopLevel(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.depth = 0
        self.elements = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements += not self.depth
        self.depth += tag not in ("hr", "br")

    def handle_endtag(self, tag: str) -> None:
        self.depth -= 1


@pytest.mark.parametrize("text", [*CORPUS, RICH_REPLY])
def test_every_finished_block_is_one_element(text: str) -> None:
    renderer = StreamingMarkdown(text)
    renderer.finish()

    assert [_TopLevel(block).elements for block in renderer.finished_blocks()] == [1] * len(
        renderer.finished_blocks()
    )


def test_finished_count_counts_the_finished_blocks() -> None:
    updates, final = stream("# A\n\npara\n- list\n", [4, 10, 17])

    assert [update.finished_count for update in updates] == [1, 1, 2]
    assert final.finished_count == 3


FORBIDDEN_AS_TEXT = ["##", "**", "__", "~~", "```", "`", "|--", "|:--", "$$", "\\(", "\\[", "]("]


@pytest.mark.parametrize("step", [1, 3, 7])
def test_open_html_never_shows_markdown_syntax_as_text(step: int) -> None:
    renderer = StreamingMarkdown()
    for end in [*range(1, len(RICH_REPLY), step), len(RICH_REPLY)]:
        update = renderer.update(RICH_REPLY[:end])
        shown = visible(update.finished_html) + visible(update.open_html or "")
        shown += visible(update.code_html)
        for marker in FORBIDDEN_AS_TEXT:
            assert marker not in shown, (RICH_REPLY[:end], update)
        assert not re.search(r"(^|\s)#", shown), (RICH_REPLY[:end], update)


def test_open_html_at_random_split_points_never_shows_markdown_syntax_as_text() -> None:
    generator = random.Random(7)
    for _ in range(20):
        renderer = StreamingMarkdown()
        ends = sorted(generator.sample(range(1, len(RICH_REPLY)), 25))
        for end in ends:
            update = renderer.update(RICH_REPLY[:end])
            shown = visible(update.open_html or "") + visible(update.finished_html)
            for marker in FORBIDDEN_AS_TEXT:
                assert marker not in shown, RICH_REPLY[:end]


def open_html_of(text: str) -> str:
    """All a page shows for this text: its finished blocks, then its open block."""
    renderer = StreamingMarkdown(text)
    return "".join(renderer.finished_blocks()) + renderer.open_block_html()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Some **bold", "<p>Some <strong>bold</strong></p>\n"),
        ("Some *em", "<p>Some <em>em</em></p>\n"),
        ("Some _em", "<p>Some <em>em</em></p>\n"),
        ("Some ~~gone", "<p>Some <s>gone</s></p>\n"),
        ("Some `code", "<p>Some <code>code</code></p>\n"),
        ("**bold *both", "<p><strong>bold <em>both</em></strong></p>\n"),
        ("Trailing opener **", "<p>Trailing opener</p>\n"),
        ("see [the docs](https://exa", "<p>see the docs</p>\n"),
        ("see [the **docs**](https://exa", "<p>see the <strong>docs</strong></p>\n"),
        ("see **[the docs", "<p>see <strong>the docs</strong></p>\n"),
        ("see ![an image", "<p>see an image</p>\n"),
        (
            "> quote **strong\n> ",
            "<blockquote>\n<p>quote <strong>strong</strong></p>\n</blockquote>\n",
        ),
        ("2 * 3 is six", "<p>2 * 3 is six</p>\n"),
        ("snake_case_name", "<p>snake_case_name</p>\n"),
        ("snake_case_", "<p>snake_case_</p>\n"),
        ("a **bold** word", "<p>a <strong>bold</strong> word</p>\n"),
        ("costs $5", "<p>costs $5</p>\n"),
    ],
)
def test_open_block_shows_unclosed_inline_syntax_as_if_closed(text: str, expected: str) -> None:
    assert open_html_of(text) == expected


def test_open_math_shows_as_math_and_an_empty_opener_is_held_back() -> None:
    assert '<math display="inline"><mrow><msup><mi>x</mi>' in open_html_of("So $x^2 +")
    assert '<math display="block">' in open_html_of("Then:\n$$\n\\frac{a}{b}")
    assert '<math display="inline">' in open_html_of("Then \\(a + b")
    assert open_html_of("Then $$") == "<p>Then</p>\n"
    assert open_html_of("Then \\[") == "<p>Then</p>\n"


def test_a_fence_shows_as_a_code_block_from_its_first_line() -> None:
    html = open_html_of("Code:\n\n```python")

    assert '<span class="codeblock-lang">python</span>' in html
    assert "```" not in visible(html)


@pytest.mark.parametrize("partial", ["`", "``", "~", "~~"])
def test_a_partial_fence_opener_is_held_back(partial: str) -> None:
    assert open_html_of(f"Text\n\n{partial}") == "<p>Text</p>\n"


@pytest.mark.parametrize("marker", ["#", "##", "###### "])
def test_a_bare_heading_marker_is_held_back(marker: str) -> None:
    assert open_html_of(f"Text\n\n{marker}") == "<p>Text</p>\n"


def test_a_table_header_is_held_back_until_its_delimiter_row_arrives() -> None:
    assert open_html_of("Intro\n\n| a | b |") == "<p>Intro</p>\n"
    assert open_html_of("Intro\n\n| a | b |\n") == "<p>Intro</p>\n"
    assert open_html_of("Intro\n\n| a | b |\n|--") == "<p>Intro</p>\n"
    assert open_html_of("Intro\n\n| a | b |\n|---|--") == "<p>Intro</p>\n"
    assert "<th>a</th>" in open_html_of("Intro\n\n| a | b |\n|---|---|\n")


def test_a_row_of_pipes_shows_once_the_next_line_proves_it_is_not_a_table() -> None:
    assert "a | b" in open_html_of("a | b\nmore text")


def test_an_open_fence_appends_its_complete_lines_to_the_code_element() -> None:
    renderer = StreamingMarkdown()
    first = renderer.update("```python\n")
    second = renderer.update("```python\nx = 1\ny = <2")
    third = renderer.update("```python\nx = 1\ny = <2\n")

    assert first.open_html is not None
    assert first.open_html.endswith("<code></code></pre></div>\n")
    assert second.open_html is None
    assert second.code_html == "x = 1\n"
    assert third.open_html is None
    assert third.code_html == "y = &lt;2\n"


def test_a_closed_fence_is_highlighted_once_as_a_finished_block() -> None:
    renderer = StreamingMarkdown()
    renderer.update("```python\ndef f(): pass\n")
    update = renderer.update("```python\ndef f(): pass\n```\n\nNext")

    assert update.finished_html == render_markdown("```python\ndef f(): pass\n```")
    assert '<span class="k">def</span>' in update.finished_html
    assert update.open_html == "<p>Next</p>\n"


def test_finish_highlights_an_unclosed_fence() -> None:
    renderer = StreamingMarkdown("```python\ndef f(): pass")

    update = renderer.finish()

    assert '<span class="k">def</span>' in update.finished_html
    assert update.open_html == ""


@pytest.mark.parametrize("text", [RICH_REPLY, CORPUS[12], CORPUS[21]])
def test_a_page_following_the_contract_matches_a_late_joiners_state(text: str) -> None:
    page = Page()
    renderer = StreamingMarkdown()
    for end in range(1, len(text) + 1, 5):
        page.apply(renderer.update(text[:end]))

        assert "".join(page.finished) == "".join(renderer.finished_blocks())
        assert page.count == len(renderer.finished_blocks())
        assert page.open == renderer.open_block_html()


def test_a_continued_reply_starts_from_its_existing_text() -> None:
    renderer = StreamingMarkdown("# Title\n\nFirst paragraph.\n\nSec")

    assert renderer.finished_blocks() == ["<h1>Title</h1>\n", "<p>First paragraph.</p>\n"]
    assert renderer.open_block_html() == "<p>Sec</p>\n"
    assert StreamingMarkdown("# Title\n\nFirst").finished_blocks() == ["<h1>Title</h1>\n"]
    update = renderer.update("# Title\n\nFirst paragraph.\n\nSecond.")
    assert update.open_html == "<p>Second.</p>\n"


def test_text_that_does_not_extend_the_previous_text_is_refused() -> None:
    renderer = StreamingMarkdown("Hello there")

    with pytest.raises(ValueError, match="extended"):
        renderer.update("Hello")
    with pytest.raises(ValueError, match="extended"):
        renderer.update("Jello there, friend")


def test_a_finished_reply_takes_no_more_text() -> None:
    renderer = StreamingMarkdown("Done.")
    renderer.finish()

    assert renderer.finish().finished_html == ""
    with pytest.raises(RuntimeError):
        renderer.update("Done. More")


def test_lone_surrogates_do_not_crash_streaming() -> None:
    renderer = StreamingMarkdown()
    renderer.update("broken \ud83d emoji\n\n```\ncode \udc00\n")

    assert "\ufffd" in renderer.finish().finished_html


def parsed_chars(monkeypatch: pytest.MonkeyPatch, text: str, piece: int) -> int:
    """How many characters the Markdown parser reads, in all, to stream ``text`` in pieces."""
    counted = 0

    def counting(parse: Callable[..., list]) -> Callable[..., list]:
        def wrapper(md: MarkdownIt, src: str, env: dict) -> list:
            nonlocal counted
            counted += len(src)
            return parse(md, src, env)

        return wrapper

    monkeypatch.setattr(markdown_stream, "_parse", counting(markdown_stream._parse))
    monkeypatch.setattr(markdown_stream, "_parse_inline", counting(markdown_stream._parse_inline))
    renderer = StreamingMarkdown()
    for end in range(piece, len(text) + piece, piece):
        renderer.update(text[:end])
    renderer.finish()
    return counted


@pytest.mark.slow
def test_a_huge_code_fence_costs_linear_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "```\n" + "".join(f"value_{n} = compute({n}) * 2\n" for n in range(11_000))
    assert len(text) > 300_000

    assert parsed_chars(monkeypatch, text, 16) <= 2 * len(text)


@pytest.mark.slow
def test_many_paragraphs_cost_linear_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    paragraph = "Plain words, then **bold** and `code` in a sentence. " + "More words. " * 14
    text = "".join(f"{paragraph}{n}\n\n" for n in range(1_400))
    assert len(text) > 300_000

    assert parsed_chars(monkeypatch, text, 16) <= 3 * len(text)


FRAGMENTS = [
    "Plain words here.",
    "Some **bold** and *em* and `code`.",
    "snake_case and 2 * 3 and $5 or $x^2$",
    "[a link](https://example.com) and ![pic](https://example.com/p.png)",
    "# Heading",
    "### Heading *em*",
    "Setext\n===",
    "- one\n- two",
    "1. first\n2. second",
    "* star\n\n* loose",
    "> quote\n> more",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "```python\nx = 1\n```",
    "~~~\nplain\n~~~",
    "```js\nopen = true;",
    "    indented",
    "---",
    "$$\n\\frac{1}{2}\n$$",
    "\\[ x \\] and \\(y\\)",
    "line  \nhard break",
    "**unclosed",
    "`",
    "#",
    "|",
]


@settings(max_examples=120, derandomize=True, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(FRAGMENTS), st.sampled_from(["\n", "\n\n", "\n\n\n"]))),
    st.lists(st.integers(1, 7), min_size=1, max_size=6),
)
def test_any_mix_of_blocks_streamed_in_any_pieces_renders_as_a_whole_and_hides_syntax(
    parts: list[tuple[str, str]], steps: list[int]
) -> None:
    text = "".join(fragment + separator for fragment, separator in parts)
    ends = []
    end = 0
    while end < len(text):
        end = min(end + steps[len(ends) % len(steps)], len(text))
        ends.append(end)
    final = visible(render_markdown(text))
    hidden = [marker for marker in FORBIDDEN_AS_TEXT if marker not in final]
    page = Page()
    renderer = StreamingMarkdown()
    for end in ends:
        page.apply(renderer.update(text[:end]))
        shown = visible("".join(page.finished) + page.open)
        assert not [marker for marker in hidden if marker in shown], text[:end]
    page.apply(renderer.finish())

    assert "".join(page.finished) == render_markdown(text)
    assert page.open == ""
