"""Every hostile payload renders through the Markdown pipeline with nothing executable left."""

import pytest

from conversations.rendering import render_markdown
from tests.conversations.test_rendering import _Parsed, assert_inert
from tests.xss_payloads import PAYLOADS

# Markup from model output may carry only these attributes: no event handlers, no
# styles, and no htmx attributes that would make the page send requests.
ALLOWED_ATTRIBUTES = {"class", "href", "rel", "target", "start", "title"}


def assert_no_active_attributes(html: str) -> None:
    for tag, attrs in _Parsed(html).elements:
        assert set(attrs) <= ALLOWED_ATTRIBUTES, (tag, attrs)


def test_the_corpus_has_at_least_a_hundred_payloads():
    assert len(set(PAYLOADS)) >= 100


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_renders_inert(payload):
    html = render_markdown(payload)
    assert_inert(html)
    assert_no_active_attributes(html)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_payload_renders_inert_while_streaming(payload):
    # A reply is rendered again and again while it streams: every prefix must be safe.
    for end in range(1, len(payload) + 1, max(1, len(payload) // 7)):
        html = render_markdown(payload[:end])
        assert_inert(html)
        assert_no_active_attributes(html)
