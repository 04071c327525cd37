"""End-to-end: Stop, and editing a message then switching between its versions."""

import shutil

import pytest

from tests.browser_fixtures import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

REPLY_HAS_TEXT = (
    "() => (document.querySelector('article.message-assistant .markdown')?.innerText || '')"
    ".includes('word3')"
)


def _send(page, text: str) -> None:
    page.fill("#composer-text", text)
    page.press("#composer-text", "Enter")


def test_stop_ends_the_reply_keeping_its_text(page, fake_upstream_server):
    fake_upstream_server.reset(token_count=1000, token_interval=0.03)
    _send(page, "Count to a thousand")
    page.wait_for_url("**/c/*/")
    page.wait_for_function(REPLY_HAS_TEXT)

    page.click("[data-action=stop]")

    stopped = page.locator("article.message-assistant[data-status=stopped]")
    stopped.wait_for(timeout=5_000)
    assert stopped.locator("text=Stopped.").count() == 1
    assert page.locator("[data-action=stop]").count() == 0
    kept = stopped.locator(".markdown").inner_text().split()
    assert kept[:4] == ["word0", "word1", "word2", "word3"]
    assert len(kept) < 1000
    page.reload()
    assert page.locator("article.message-assistant .markdown").inner_text().split() == kept


def test_the_escape_key_stops_the_reply(page, fake_upstream_server):
    fake_upstream_server.reset(token_count=1000, token_interval=0.03)
    _send(page, "Count to a thousand")
    page.wait_for_url("**/c/*/")
    page.wait_for_function(REPLY_HAS_TEXT)

    page.keyboard.press("Escape")

    page.locator("article.message-assistant[data-status=stopped]").wait_for(timeout=5_000)


def test_edit_and_resend_then_switch_between_the_versions(page, fake_upstream_server):
    fake_upstream_server.reset(reply="The first answer.")
    _send(page, "What is one plus one?")
    page.wait_for_url("**/c/*/")
    page.wait_for_selector("article.message-assistant[data-status=complete]")

    fake_upstream_server.reset(reply="The second answer.")
    question = page.locator("article.message-user")
    question.locator("text=Edit").click()
    editor = page.locator("article.message-user.is-editing textarea")
    editor.fill("What is two plus")
    editor.press("Shift+Enter")  # a new line, as in the composer
    editor.press_sequentially("two?")
    assert editor.input_value() == "What is two plus\ntwo?"
    editor.fill("What is two plus two?")
    editor.press("Enter")  # sends, as in the composer

    page.wait_for_selector("article.message-assistant[data-status=complete] >> text=second answer")
    assert page.locator("article.message-user .bubble-user").inner_text() == (
        "What is two plus two?"
    )
    assert page.locator("article.message-user .versions-position").inner_text() == "2 / 2"
    assert page.locator("#messages >> text=The first answer.").count() == 0

    page.click("article.message-user [aria-label='Previous version']")
    page.wait_for_selector("article.message-assistant >> text=The first answer.")
    assert page.locator("article.message-user .bubble-user").inner_text() == (
        "What is one plus one?"
    )
    assert page.locator("article.message-user .versions-position").inner_text() == "1 / 2"

    page.reload()  # the choice is kept
    assert page.locator("article.message-assistant .markdown").inner_text().strip() == (
        "The first answer."
    )
    page.click("article.message-user [aria-label='Next version']")
    page.wait_for_selector("article.message-assistant >> text=The second answer.")
    assert fake_upstream_server.requests[-1].body["messages"][-1] == {
        "role": "user",
        "content": "What is two plus two?",
    }


def test_regenerate_adds_a_version_of_the_reply(page, fake_upstream_server):
    fake_upstream_server.reset(reply="Answer A.")
    _send(page, "Say something")
    page.wait_for_url("**/c/*/")
    page.wait_for_selector("article.message-assistant[data-status=complete]")

    fake_upstream_server.reset(reply="Answer B.")
    page.click("text=Regenerate")

    page.wait_for_selector("article.message-assistant[data-status=complete] >> text=Answer B.")
    assert page.locator("article.message-assistant").count() == 1
    assert page.locator("article.message-assistant .versions-position").inner_text() == "2 / 2"
    page.click("article.message-assistant [aria-label='Previous version']")
    page.wait_for_selector("article.message-assistant >> text=Answer A.")


def test_another_tab_follows_to_the_version_shown(page, fake_upstream_server):
    fake_upstream_server.reset(reply="Answer A.")
    _send(page, "Say something")
    page.wait_for_url("**/c/*/")
    page.wait_for_selector("article.message-assistant[data-status=complete]")
    other_tab = page.context.new_page()
    other_tab.goto(page.url)
    other_tab.wait_for_selector("article.message-assistant >> text=Answer A.")

    fake_upstream_server.reset(reply="Answer B.")
    page.click("text=Regenerate")

    other_tab.wait_for_selector("article.message-assistant[data-status=complete] >> text=Answer B.")
    assert other_tab.locator("article.message-assistant").count() == 1
    assert other_tab.locator("text=Answer A.").count() == 0
    page.click("article.message-assistant [aria-label='Previous version']")
    other_tab.wait_for_selector("article.message-assistant >> text=Answer A.")
    other_tab.close()


# An exchange as frames announce it: the messages a tab may lack, each naming its parent.
EXCHANGE = (
    '<div hx-swap-oob="beforeend:#messages"><article id="message-{id}" '
    'class="message message-user" data-parent="{parent}"><p>{text}</p></article></div>'
)
# Keeps the page's socket at hand, to give it frames as the server would.
KEEP_SOCKET = (
    "document.addEventListener('htmx:wsOpen', (event) => {"
    " window.chatSocket = event.detail.event.target; });"
)
ANNOUNCE = "html => window.chatSocket.dispatchEvent(new MessageEvent('message', {data: html}))"


def _answered_with_socket_at_hand(page, fake_upstream_server) -> str:
    """A question answered, the page's socket open and kept; the reply's id."""
    fake_upstream_server.reset(reply="The answer.")
    page.context.add_init_script(KEEP_SOCKET)
    _send(page, "A question")
    page.wait_for_url("**/c/*/")
    page.wait_for_selector("article.message-assistant[data-status=complete]")
    page.wait_for_function("() => window.chatSocket?.readyState === WebSocket.OPEN")
    return page.locator("article.message-assistant").get_attribute("id").split("-")[1]


def test_an_exchange_is_added_only_where_the_pages_branch_ends(page, fake_upstream_server):
    from playwright.sync_api import expect

    reply_id = _answered_with_socket_at_hand(page, fake_upstream_server)

    # Sent from another tab after this page's last message: added.
    page.evaluate(ANNOUNCE, EXCHANGE.format(id=900001, parent=reply_id, text="Next question"))
    expect(page.locator("#message-900001")).to_have_count(1)

    # Read before the page moved to another branch (its parent is not where the page
    # ends): not added; the page loads its branch again instead.
    with page.expect_response(lambda response: "/older/" in response.url):
        page.evaluate(ANNOUNCE, EXCHANGE.format(id=900002, parent="", text="Stale question"))
    expect(page.locator("#message-900001")).to_have_count(0)  # the branch as stored
    expect(page.locator("#message-900002")).to_have_count(0)
    expect(page.locator(f"#message-{reply_id}")).to_contain_text("The answer.")


REPLY = (
    '<article id="message-{id}" class="message message-assistant" data-parent="{parent}" '
    'data-status="{status}"{oob}><div class="markdown">{text}</div></article>'
)


def test_a_reply_that_ends_before_the_page_shows_it_is_told_to_screen_readers(
    page, fake_upstream_server
):
    from playwright.sync_api import expect

    reply_id = _answered_with_socket_at_hand(page, fake_upstream_server)
    announcer = page.locator("#announcer")

    # A fast reply (to an Edit, say): its first frame comes before the page shows it...
    pending = REPLY.format(
        id=900002, parent=900001, status="pending", oob=' hx-swap-oob="outerHTML"', text=""
    )
    page.evaluate(ANNOUNCE, pending)
    expect(announcer).to_have_text("Reply started.")
    # ...and the page shows it already finished.
    question = EXCHANGE.format(id=900001, parent=reply_id, text="Next question")
    answer = REPLY.format(id=900002, parent=900001, status="complete", oob="", text="Fast.")
    page.evaluate(ANNOUNCE, question.replace("</article>", "</article>" + answer))
    expect(page.locator("#message-900002")).to_have_count(1)
    expect(announcer).to_have_text("Reply finished. Fast.")
