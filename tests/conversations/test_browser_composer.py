"""End-to-end, on a laptop's screen and a phone's: the composer follows the conversation.
While a reply is written Send becomes Stop and Enter waits; a message the server did not
take says why, and its text stays; thinking shows live; a button jumps to the latest text."""

import re
import shutil

import pytest

from tests.browser_fixtures import CHROMIUM, SCREENS, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

WAIT = 20_000
SEND = "#composer .button-send:not(.button-composer-stop)"
STOP = "#composer .button-composer-stop"


@pytest.fixture(params=sorted(SCREENS))
def page(request, browser, webchat_server):
    """A signed-in page on a laptop's screen and on a phone's."""
    with signed_in_page(browser, webchat_server, viewport=SCREENS[request.param]) as page:
        yield page


def _send(page, text: str) -> None:
    page.fill("#composer-text", text)
    page.press("#composer-text", "Enter")


def _conversation_with_a_reply(page, fake_upstream_server) -> None:
    fake_upstream_server.reset(reply="Ready.")
    _send(page, "Hello")
    page.wait_for_url("**/c/*/")
    page.wait_for_selector("article.message-assistant[data-status=complete]", timeout=WAIT)


def test_send_becomes_stop_while_a_reply_is_written(page, fake_upstream_server):
    from playwright.sync_api import expect

    _conversation_with_a_reply(page, fake_upstream_server)
    expect(page.locator(SEND)).to_be_visible()
    expect(page.locator(STOP)).to_be_hidden()

    fake_upstream_server.reset(token_count=2000, token_interval=0.02)
    _send(page, "Count for me")
    expect(page.locator(STOP)).to_be_visible(timeout=WAIT)
    expect(page.locator(SEND)).to_be_hidden()
    expect(page.locator("article.message-assistant").last).to_contain_text("word3", timeout=WAIT)

    # Enter waits while the reply is written: nothing is sent, the text stays.
    requests = len(fake_upstream_server.requests)
    _send(page, "And then?")
    page.locator(STOP).click()
    page.wait_for_selector("article.message-assistant[data-status=stopped]", timeout=WAIT)
    expect(page.locator(SEND)).to_be_visible()
    assert len(fake_upstream_server.requests) == requests
    assert page.input_value("#composer-text") == "And then?"
    assert page.locator("#composer-error").inner_text() == ""


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (400, "too large to send"),
        (403, "This page has expired"),
        (429, "Too many requests"),
        (502, "The server had a problem"),
    ],
)
def test_a_message_the_server_did_not_take_says_why_and_stays(
    page, fake_upstream_server, status, says
):
    from playwright.sync_api import expect

    _conversation_with_a_reply(page, fake_upstream_server)
    page.route(re.compile(r".*/messages/$"), lambda route: route.fulfill(status=status, body=""))

    _send(page, "A message that will not arrive")

    expect(page.locator("#composer-error")).to_contain_text(says, timeout=WAIT)
    assert page.input_value("#composer-text") == "A message that will not arrive"
    assert page.locator("article.message-user").count() == 1


def test_a_message_that_cannot_reach_the_server_says_so(page, fake_upstream_server):
    from playwright.sync_api import expect

    _conversation_with_a_reply(page, fake_upstream_server)
    page.route(re.compile(r".*/messages/$"), lambda route: route.abort())

    _send(page, "Hello again")

    expect(page.locator("#composer-error")).to_contain_text("could not be reached", timeout=WAIT)
    assert page.input_value("#composer-text") == "Hello again"


def test_a_lost_csrf_cookie_is_explained(page, fake_upstream_server):
    from playwright.sync_api import expect

    _conversation_with_a_reply(page, fake_upstream_server)
    page.context.clear_cookies(name="csrftoken")

    _send(page, "After the cookie went")

    expect(page.locator("#composer-error")).to_contain_text("This page has expired", timeout=WAIT)
    assert page.input_value("#composer-text") == "After the cookie went"


def test_a_button_jumps_to_the_latest_text_when_the_view_stopped_following(
    page, fake_upstream_server
):
    from playwright.sync_api import expect

    _conversation_with_a_reply(page, fake_upstream_server)
    fake_upstream_server.reset(token_count=3000, token_interval=0.005)
    _send(page, "A very long answer")
    jump = page.locator("#jump-to-latest")
    expect(page.locator("article.message-assistant").last).to_contain_text("word300", timeout=WAIT)
    expect(jump).to_be_hidden()  # following the reply

    page.locator("#scroller").evaluate("scroller => scroller.scrollTo(0, 0)")
    expect(jump).to_be_visible(timeout=WAIT)
    at_top = page.locator("#scroller").evaluate("scroller => scroller.scrollTop")
    expect(page.locator("article.message-assistant").last).to_contain_text("word900", timeout=WAIT)
    assert page.locator("#scroller").evaluate("scroller => scroller.scrollTop") == at_top

    jump.click()
    expect(jump).to_be_hidden(timeout=WAIT)
    page.wait_for_function(
        "() => { const s = document.getElementById('scroller');"
        " return s.scrollHeight - s.scrollTop - s.clientHeight < 80; }",
        timeout=WAIT,
    )
    page.locator(STOP).click()


def test_thinking_shows_live_then_folds_into_how_long_it_took(page, fake_upstream_server):
    from playwright.sync_api import expect

    _conversation_with_a_reply(page, fake_upstream_server)
    thinking = " ".join(f"step{n}" for n in range(100))
    fake_upstream_server.reset(reasoning=thinking, reply="The answer.", token_interval=0.05)
    _send(page, "Think first")

    reply = page.locator("article.message-assistant").last
    details = reply.locator("details.thinking")
    expect(details).to_be_visible(timeout=WAIT)
    assert details.evaluate("details => details.open")  # open while the model thinks
    expect(reply.locator("summary")).to_have_text(re.compile(r"Thinking… \d+ s"), timeout=WAIT)

    expect(reply).to_have_attribute("data-status", "complete", timeout=WAIT)
    expect(reply.locator("summary")).to_have_text(re.compile(r"Thought for \d+ s"))
    assert not details.evaluate("details => details.open")  # folded once the answer began
    details.locator("summary").click()
    expect(details.locator(".thinking-body")).to_contain_text("step99")

    page.reload()
    expect(page.locator("article.message-assistant").last.locator("summary")).to_have_text(
        re.compile(r"Thought for \d+ s")
    )
