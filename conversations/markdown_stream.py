"""Render a reply's Markdown while it streams, at a cost linear in its length.

A reply is a sequence of top-level blocks (paragraphs, headings, lists, tables, code...). A block
is *finished* once later text cannot change its rendering: a paragraph or table followed by a
blank line, a heading, a rule, a closed fence, or any block once the next block has begun on a
complete line. Lists, quotes and indented code stay open until then, since later lines can still
change them (a loose item, a lazy continuation). A finished block is parsed once, rendered
exactly as ``render_markdown`` renders it, and never again.

Only the *open* region after the last finished block is looked at again, and cheaply: complete
lines are split into blocks only when a line ends; an open paragraph is rendered in pieces that
are each rendered once, plain text needing no parsing at all; an open top-level code fence is
never parsed: its complete lines are escaped once and appended, and Pygments highlights it once,
when it closes.

DOM contract, for a page showing a streaming reply, with two containers:

- ``<div class="finished">`` only grows: append each update's ``finished_html``. Every finished
  block is exactly one element, so after appending, the container has ``finished_count`` child
  elements; if not, the page missed an update and asks for the state again: the blocks of
  ``finished_blocks()`` and ``open_block_html()``, neither of which renders anything again.
- ``<div class="open">`` shows the open block. When ``open_html`` is a string, it replaces the
  container's content. When it is ``None``, the open block is a code fence the page already
  shows: append ``code_html`` (escaped complete lines) to the ``<code>`` element inside it.
- ``finish()`` finishes every block and empties the open container (``open_html`` is "").

The open block never shows Markdown syntax as text: unclosed emphasis, code spans, math and links
are closed before rendering (a link whose address is still arriving shows its text, an opener
with nothing after it yet is left out), and lines whose meaning the next line decides are held
back: a lone ``#``, a partial fence opener, a table row (rows show once complete, and a header
row once its delimiter row is), a partial delimiter row. Lines of an open fence show once
complete.

The concatenation of all ``finished_html`` equals ``render_markdown(text)`` of the whole text,
with one difference: a reference-style link whose definition comes in a later block than the
link stays literal text (definitions before their use work).
"""

import re
from dataclasses import dataclass, field
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.token import Token

from conversations.rendering import (
    _CODEBLOCK_END,
    _LONE_SURROGATE,
    _MARKDOWN,
    _PLAIN_CODE_MARKDOWN,
    _SANITIZER,
    _codeblock_start,
    _language,
)

_LIST_OR_QUOTE = r"[ >]*(?:(?:[-+*]|\d{1,9}[.)]) +)?"
_PARTIAL_FENCE = re.compile(_LIST_OR_QUOTE + r"(?:`{1,2}|~{1,2})")
_BARE_HEADING = re.compile(_LIST_OR_QUOTE + r"#{1,6} *")
_BARE_MARKER = re.compile(r"[ >]*(?:(?:[-+*]|\d{1,9}[.)]) *)?")
_PARTIAL_DELIMITER_ROW = re.compile(r"[ >]*\|?[ \t]*:?-[-:| \t]*|[ >]*\|[ \t]*:?")
_TABLE_ROW = re.compile(r"[ >]*\|")
_INLINE_SYNTAX = re.compile(r"[\\`$*_~\[\]]")
# Text without any of these renders as itself, escaped: no need to parse it.
_PLAIN = re.compile(r"[^\\`$*_~\[\]<>&\n]*")
# A paragraph line starting otherwise could still turn into a list item, heading, rule...
_PLAIN_START = r"[^-+*#>`~|=_:\d\s]"
_PLAIN_LINE_START = re.compile(_PLAIN_START)
# Complete lines that can only continue a paragraph, or start one after a finished block.
_PARAGRAPH_LINES = re.compile(rf"(?:{_PLAIN_START}[^\n]*\n)+")
# One emphasis or code span still being typed, after plain text: common, and cheap to render.
_SIMPLE_SPAN = re.compile(
    r"(?P<before>[^\\`$*_~\[\]<>&\n]*)(?P<mark>\*\*|__|\*|_|~~|`+)"
    r"(?P<inside>[^\\`$*_~\[\]<>&\s](?:[^\\`$*_~\[\]<>&\n]*[^\\`$*_~\[\]<>&\s])?)(?P=mark)"
    r"(?P<after>(?:[ .,;:!?)][^\\`$*_~\[\]<>&\n]*)?)"
)
_SPAN_TAGS = {"**": "strong", "__": "strong", "*": "em", "_": "em", "~~": "s"}
_TABLE_ROWS = re.compile(r"(?:\|[^\n]*\n)+")
_PLACEHOLDER = "\ue000"


@dataclass(frozen=True)
class MarkdownUpdate:
    """What changed on the page: see the module's DOM contract."""

    finished_html: str
    finished_count: int
    open_html: str | None
    code_html: str = ""


@dataclass
class _OpenParagraph:
    """The open region's last paragraph, while only its last line grows."""

    line_start: int  # offset of its last line in the text
    content_start: int  # offset where that line's inline content begins
    head: str  # its inline content before that line
    before: str  # sanitized HTML of the open region around the paragraph's content
    after: str
    settled: str = ""  # sanitized HTML of the content's first ``settled_end`` characters
    settled_end: int = 0


@dataclass
class _OpenFence:
    start: int  # offset of the opener line in the text
    closer: re.Pattern[str]
    indent: int
    language: str
    scanned: int  # offset up to which complete lines have been read
    lines: list[str] = field(default_factory=list)  # escaped HTML of the complete lines


def _parse(md: MarkdownIt, src: str, env: dict) -> list[Token]:
    return md.parse(_LONE_SURROGATE.sub("\ufffd", src), env)


def _parse_inline(md: MarkdownIt, src: str, env: dict) -> list[Token]:
    return md.parseInline(_LONE_SURROGATE.sub("\ufffd", src), env)


def _top_level_blocks(tokens: list[Token]) -> list[tuple[int, int]]:
    """The (first, last + 1) token indices of each top-level block."""
    blocks = []
    first = 0
    for index, token in enumerate(tokens):
        if token.level:
            continue
        if token.nesting == 1:
            first = index
        else:
            blocks.append((first if token.nesting == -1 else index, index + 1))
    return blocks


@lru_cache(maxsize=64)
def _fence_closer(marker: str) -> re.Pattern[str]:
    return re.compile(rf" {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*")


def _is_final(token: Token, region: str) -> bool:
    """Whether the region's last block, given its complete lines, can still change."""
    start, end = token.map
    if token.type in ("heading_open", "hr"):
        return True
    if token.type in ("paragraph_open", "table_open"):
        return end < region.count("\n")  # a blank line follows
    if token.type == "fence" and end - start > 1:
        line_start = _line_offset(region, end - 1)
        line = region[line_start : region.index("\n", line_start)]
        return bool(_fence_closer(token.markup).fullmatch(line))
    return False


def _continuing_lines(token: Token) -> re.Pattern[str] | None:
    """Complete lines that can only continue the block ``token`` opens."""
    if token.type == "paragraph_open":
        return _PARAGRAPH_LINES
    if token.type == "table_open":
        return _TABLE_ROWS
    if token.type == "bullet_list_open":
        # A new item with the same bullet, unless the line is a thematic break.
        return _list_items(rf"(?![ *_-]+\n){re.escape(token.markup)}")
    if token.type == "ordered_list_open":
        return _list_items(rf"\d{{1,9}}{re.escape(token.markup)}")
    return None


@lru_cache(maxsize=16)
def _list_items(marker: str) -> re.Pattern[str]:
    return re.compile(rf"(?:{marker}(?: [^\n]*)?\n)+")


def _line_offset(text: str, line: int) -> int:
    offset = 0
    for _ in range(line):
        offset = text.index("\n", offset) + 1
    return offset


class StreamingMarkdown:
    """Incremental renderer of one reply; feed it the whole text so far on each update."""

    def __init__(self, text: str = "") -> None:
        self._text = ""
        self._start = 0  # where the open region begins: everything before is finished
        self._lines_end = 0  # end of the complete lines already split into blocks
        self._blocks: list[str] = []
        self._env: dict = {}
        self._fence: _OpenFence | None = None
        self._paragraph: _OpenParagraph | None = None
        # Complete lines that can only continue the open region's block (or start a paragraph).
        self._continuing: re.Pattern[str] | None = _PARAGRAPH_LINES
        self._held: str | None = None  # the open text last rendered by the general path
        # The open region's complete lines when last split into blocks, and their last block.
        self._settled: tuple[str, list[Token]] | None = None
        self._open_html = ""
        self._done = False
        if text:
            self.update(text)

    def update(self, text: str) -> MarkdownUpdate:
        """Take the text received so far (an extension of the previous one); return the change."""
        previous = len(self._text)
        if self._done:
            raise RuntimeError("the reply is finished")
        # Comparing the whole text would make each update cost the whole reply.
        if len(text) < previous or text[max(previous - 32, 0) : previous] != self._text[-32:]:
            raise ValueError("update() needs the previous text extended, not changed")
        self._text = text
        first_new = len(self._blocks)
        open_html, code_html = self._advance(previous)
        if open_html is not None:
            self._open_html = open_html
        return MarkdownUpdate(
            "".join(self._blocks[first_new:]), len(self._blocks), open_html, code_html
        )

    def finish(self) -> MarkdownUpdate:
        """The text is final: every block is finished, code highlighted, the open block empty."""
        first_new = len(self._blocks)
        if not self._done:
            self._finish_region(len(self._text))
            self._fence = None
            self._open_html = ""
            self._done = True
        return MarkdownUpdate("".join(self._blocks[first_new:]), len(self._blocks), "", "")

    def finished_blocks(self) -> list[str]:
        """The HTML of every finished block so far, for a page that joins late."""
        return list(self._blocks)

    def open_block_html(self) -> str:
        """The whole HTML of the open block, for a page that joins late."""
        if self._fence:
            fence = self._fence
            return f"{_codeblock_start(fence.language)}{''.join(fence.lines)}{_CODEBLOCK_END}"
        return self._open_html

    def _advance(self, previous: int) -> tuple[str | None, str]:
        if self._fence:
            closed, code_html = self._read_fence()
            if not closed:
                return None, code_html
        start = self._start
        lines_end = self._text.rfind("\n", self._start) + 1
        if lines_end > self._lines_end:
            if self._continuing and self._continuing.fullmatch(
                self._text, self._lines_end, lines_end
            ):
                self._lines_end = lines_end  # nothing these lines bring can finish a block
            else:
                self._lines_end = lines_end
                self._settle()
            if self._fence:
                self._read_fence()
                return self.open_block_html(), ""
        if self._start == start and not self._text[previous:].strip():
            return self._open_html, ""  # whitespace alone changes nothing yet
        return self._render_open(), ""

    def _settle(self) -> None:
        """Split the complete lines of the open region into blocks; finish all final ones."""
        self._paragraph = None
        self._held = None
        self._settled = None
        region = self._text[self._start : self._lines_end]
        tokens = _parse(_MARKDOWN, region, self._env)
        blocks = _top_level_blocks(tokens)
        self._continuing = _PARAGRAPH_LINES
        if not blocks:
            return
        last = tokens[blocks[-1][0]]
        if _is_final(last, region):
            self._append_blocks(tokens, blocks)
            self._start = self._lines_end
            return
        self._continuing = _continuing_lines(last)
        self._append_blocks(tokens, blocks[:-1])
        self._start += _line_offset(region, last.map[0])
        rest = tokens[blocks[-1][0] :]
        shift = last.map[0]
        for token in rest:
            if token.map:
                token.map = [token.map[0] - shift, token.map[1] - shift]
        self._settled = (self._text[self._start : self._lines_end], rest)
        if last.type == "fence":
            opener_end = self._text.index("\n", self._start)
            indent = len(self._text[self._start : opener_end]) - len(
                self._text[self._start : opener_end].lstrip(" ")
            )
            self._fence = _OpenFence(
                self._start,
                _fence_closer(last.markup),
                indent,
                _language(last.info),
                opener_end + 1,
            )

    def _read_fence(self) -> tuple[bool, str]:
        """Read the open fence's new complete lines; True once its closing line has come."""
        fence = self._fence
        assert fence is not None
        end = self._text.rfind("\n", fence.scanned) + 1
        pieces = []
        position = fence.scanned
        while position < end:
            line_end = self._text.index("\n", position)
            if fence.closer.fullmatch(self._text, position, line_end):
                self._fence = None
                self._finish_region(line_end + 1)
                return True, ""
            line = self._text[position:line_end]
            stripped = line.lstrip(" ")
            line = line[min(len(line) - len(stripped), fence.indent) :]
            pieces.append(escapeHtml(_LONE_SURROGATE.sub("\ufffd", line)) + "\n")
            position = line_end + 1
        fence.scanned = max(end, fence.scanned)
        html = _SANITIZER.clean("".join(pieces)) if pieces else ""
        if html:
            fence.lines.append(html)
        return False, html

    def _finish_region(self, end: int) -> None:
        region = self._text[self._start : end]
        tokens = _parse(_MARKDOWN, region, self._env)
        self._append_blocks(tokens, _top_level_blocks(tokens))
        self._start = self._lines_end = end

    def _append_blocks(self, tokens: list[Token], blocks: list[tuple[int, int]]) -> None:
        renderer = _MARKDOWN.renderer
        for first, last in blocks:
            html = renderer.render(tokens[first:last], _MARKDOWN.options, self._env)
            self._blocks.append(_SANITIZER.clean(html))

    def _references(self) -> dict:
        return {"references": dict(self._env.get("references", {}))}

    def _render_open(self) -> str:
        paragraph = self._paragraph
        if paragraph:
            line_end = self._text.find("\n", paragraph.line_start)
            if line_end < 0 or not self._text[line_end:].strip():
                return self._render_paragraph(paragraph)
        self._paragraph = None
        region = self._text[self._start :]
        if "\n" not in region and _PLAIN_LINE_START.match(region):
            # A first line that can only be a paragraph's: no need to parse it to know that.
            self._paragraph = _OpenParagraph(self._start, self._start, "", "<p>", "</p>\n")
            return self._render_paragraph(self._paragraph)
        text = _hold_back(region)
        if text == self._held:
            return self._open_html
        self._held = text
        if not text.strip():
            return ""
        env = self._references()
        if self._settled and self._settled[0] == text:
            tokens = self._settled[1]  # the lines just split into blocks, nothing more
        else:
            tokens = _parse(_PLAIN_CODE_MARKDOWN, text, env)
        if text == region and (paragraph := self._open_paragraph(text, tokens, env)):
            self._paragraph = paragraph
            return self._render_paragraph(paragraph)
        completed = _complete_last_paragraph(text, tokens)
        if completed is not None:
            env = self._references()
            tokens = _parse(_PLAIN_CODE_MARKDOWN, completed, env)
        html = _PLAIN_CODE_MARKDOWN.renderer.render(tokens, _PLAIN_CODE_MARKDOWN.options, env)
        return _SANITIZER.clean(html)

    def _open_paragraph(self, text: str, tokens: list[Token], env: dict) -> _OpenParagraph | None:
        """Set up the cheap rendering of a last line that can only stay in its paragraph."""
        last = len(tokens) - 1
        while last > 0 and tokens[last].nesting == -1:
            last -= 1
        inline = tokens[last]
        block = tokens[last - 1].type
        if inline.type != "inline" or block not in ("paragraph_open", "heading_open"):
            return None
        line_start = text.rfind("\n") + 1
        line = text[line_start:].rstrip()
        line_content = inline.content[inline.content.rfind("\n") + 1 :]
        if not line_content or not line.endswith(line_content):
            return None
        if block == "paragraph_open" and not (
            _PLAIN_LINE_START.match(line_content) or len(line_content) > 11
        ):
            return None
        inline.children = [Token("text", "", 0, content=_PLACEHOLDER)]
        html = _PLAIN_CODE_MARKDOWN.renderer.render(tokens, _PLAIN_CODE_MARKDOWN.options, env)
        before, _, after = _SANITIZER.clean(html).rpartition(_PLACEHOLDER)
        return _OpenParagraph(
            line_start=self._start + line_start,
            content_start=self._start + line_start + len(line) - len(line_content),
            head=inline.content[: len(inline.content) - len(line_content)],
            before=before,
            after=after,
        )

    def _render_paragraph(self, paragraph: _OpenParagraph) -> str:
        """Render the open paragraph's content: settled pieces once, the rest each time."""
        self._held = None
        content = paragraph.head + self._text[paragraph.content_start :].rstrip()
        rest = content[paragraph.settled_end :]
        completed, split = _close_inline(rest)
        if split:
            paragraph.settled += self._render_inline(rest[:split])
            paragraph.settled_end += split
            rest = rest[split:]
            completed, _ = _close_inline(rest)
        settled = paragraph.settled if completed else paragraph.settled.rstrip()
        return f"{paragraph.before}{settled}{self._render_inline(completed)}{paragraph.after}"

    def _render_inline(self, text: str) -> str:
        if _PLAIN.fullmatch(text):
            return _LONE_SURROGATE.sub("\ufffd", text)  # without <, > or &, text is its own HTML
        span = _SIMPLE_SPAN.fullmatch(text)
        if span and not (span["mark"][0] == "_" and span["before"][-1:].isalnum()):
            tag = _SPAN_TAGS.get(span["mark"], "code")
            html = f"{span['before']}<{tag}>{span['inside']}</{tag}>{span['after']}"
            return _LONE_SURROGATE.sub("\ufffd", html)
        env = self._references()
        tokens = _parse_inline(_PLAIN_CODE_MARKDOWN, text, env)
        return _SANITIZER.clean(
            _PLAIN_CODE_MARKDOWN.renderer.render(tokens, _PLAIN_CODE_MARKDOWN.options, env)
        )


def _hold_back(text: str) -> str:
    """Drop the trailing lines whose meaning the next line decides."""
    start = text.rfind("\n") + 1
    last = text[start:]
    previous_start = text.rfind("\n", 0, start - 1) + 1 if start else -1
    previous = text[previous_start : start - 1] if start else ""
    if last and (
        _PARTIAL_FENCE.fullmatch(last)
        or _BARE_HEADING.fullmatch(last)
        or _BARE_MARKER.fullmatch(last)
        or _PARTIAL_DELIMITER_ROW.fullmatch(last)
        or _TABLE_ROW.match(last)
    ):
        text, last = text[:start], ""
    if not last and "|" in previous:
        # A row after no other row may be a table's header: its delimiter row comes next.
        before_start = text.rfind("\n", 0, previous_start - 1) + 1 if previous_start else -1
        if before_start < 0 or "|" not in text[before_start : previous_start - 1]:
            text = text[:previous_start]
    return text


def _complete_last_paragraph(text: str, tokens: list[Token]) -> str | None:
    """The text with the unclosed inline syntax at its end closed, or None if there is none."""
    line_count = text.count("\n") + (not text.endswith("\n"))
    for token in reversed(tokens):
        if token.type in ("fence", "code_block"):
            return None
        if token.type == "inline":
            break
    else:
        return None
    if not token.map or token.map[1] < line_count:
        return None
    content = token.content.rstrip()
    completed, _ = _close_inline(content)
    if completed == content:
        return None
    kept = next(
        (n for n, pair in enumerate(zip(content, completed, strict=False)) if pair[0] != pair[1]),
        min(len(content), len(completed)),
    )
    removed = content[kept:]
    stripped = text.rstrip()
    if not stripped.endswith(removed):
        return None
    return stripped[: len(stripped) - len(removed)] + completed[kept:]


def _run_length(text: str, index: int) -> int:
    char = text[index]
    end = index
    while end < len(text) and text[end] == char:
        end += 1
    return end - index


def _find_run(text: str, char: str, length: int, start: int) -> int:
    """The index of the next run of exactly ``length`` ``char``, or -1."""
    while (index := text.find(char * length, start)) >= 0:
        run = _run_length(text, index)
        if run == length:
            return index
        start = index + run
    return -1


def _close_inline(text: str) -> tuple[str, int]:
    """Close what a paragraph still being typed leaves open at its end.

    Unclosed emphasis, strikethrough, code spans and math get their closers; an opener with
    nothing after it yet is dropped; a link whose address is still arriving shows its text.
    Also returns the last position (0 if none) where the text can be cut in two parts that
    render apart as they render together: after a space, with nothing left open before it.
    """
    openers: list[tuple[str, int, int]] = []  # (char, position, run length); "[" for brackets
    inner = ""  # closer of a code span or math left open at the end
    inner_at = -1
    link: tuple[int, int, int] | None = None  # (start, text start, text end) of a partial link
    index = 0
    size = len(text)
    split = 0
    while True:
        special = _INLINE_SYNTAX.search(text, index)
        stretch_end = special.start() if special else size
        if not openers:
            space = text.rfind(" ", index, stretch_end)
            if 0 < space < size - 1 and text[space - 1] != " " and not text[space + 1].isspace():
                split = space + 1
        if not special:
            break
        index = stretch_end
        char = text[index]
        if char == "\\":
            if text.startswith(("\\(", "\\["), index):
                closer = "\\)" if text[index + 1] == "(" else "\\]"
                end = text.find(closer, index + 2)
                if end < 0:
                    inner, inner_at = closer, index
                    break
                index = end + 2
            else:
                index += 2
        elif char == "`":
            run = _run_length(text, index)
            end = _find_run(text, "`", run, index + run)
            if end < 0:
                inner, inner_at = "`" * run, index
                break
            index = end + run
        elif char == "$":
            delimiter = "$$" if text.startswith("$$", index) else "$"
            after = text[index + len(delimiter) : index + len(delimiter) + 1]
            if (
                delimiter == "$"
                and after
                and (after.isspace() or after.isdigit() or text[index - 1 : index].isdigit())
            ):
                index += 1
                continue
            end = text.find(delimiter, index + len(delimiter))
            if end < 0:
                inner, inner_at = delimiter, index
                break
            index = end + len(delimiter)
        elif char in "*_~":
            run = _run_length(text, index)
            before = text[index - 1] if index else " "
            after = text[index + run : index + run + 1]
            index += run
            if char == "~" and run != 2:
                continue
            opens = not after.isspace() and (char != "_" or not before.isalnum())
            closes = not before.isspace() and (char != "_" or not after.isalnum())
            if closes and any(opener[0] == char for opener in openers):
                run = _match_closer(openers, char, run)
            if run and opens:
                openers.append((char, index - run, run))
        elif char == "[":
            openers.append(("[", index, 1))
            index += 1
        elif char == "]":
            bracket = next(
                (n for n in range(len(openers) - 1, -1, -1) if openers[n][0] == "["), None
            )
            index += 1
            if bracket is None:
                continue
            start = openers[bracket][1]
            if text.startswith("(", index):
                end = text.find(")", index)
                if end < 0:
                    link = (start - (text[start - 1 : start] == "!"), start + 1, index - 1)
                    del openers[bracket]
                    break
                index = end + 1
            del openers[bracket]
    if link:
        link_start, text_start, text_end = link
        body = text[:link_start] + text[text_start:text_end]
        shift = text_start - link_start
        positions = [(c, p - shift if p > link_start else p, n) for c, p, n in openers]
    elif inner and text[inner_at + len(inner) :].strip():
        body = text
        positions = openers
    else:
        body = text[:inner_at] if inner else text
        inner = ""
        positions = openers
    closers = [inner]
    for char, position, length in reversed(positions):
        if position >= len(body):
            continue
        if char == "[":
            # An unclosed bracket is most likely a link's: show its text only, for now.
            start = position - (body[position - 1 : position] == "!")
            body = body[:start] + body[position + 1 :]
            continue
        if not body[position + length :].strip():
            body = body[:position].rstrip()
            continue
        closers.append(char * length)
    if not inner:
        body = body.rstrip()
    if (len(body) - len(body.rstrip("\\"))) % 2:
        body = body[:-1]  # a closer after a lone backslash would be escaped
    return body + "".join(closers), split


def _match_closer(openers: list[tuple[str, int, int]], char: str, run: int) -> int:
    """Close the nearest openers of ``char`` with a run of ``run``; return what is left of it."""
    while run:
        match = next((n for n in range(len(openers) - 1, -1, -1) if openers[n][0] == char), None)
        if match is None:
            break
        del openers[match + 1 :]
        _, position, length = openers[match]
        used = min(length, run)
        run -= used
        if length > used:
            openers[match] = (char, position, length - used)
        else:
            openers.pop()
    return run
