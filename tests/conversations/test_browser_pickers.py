"""End-to-end, on a desktop and a phone screen: the model menu of the chat header, the
composer's preset menu and its "/" search, the phone composer, and the settings drawer
with the presets edited in it."""

import shutil

import pytest

from tests import image_files
from tests.browser_fixtures import CHROMIUM, SCREENS, running_webchat, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed"),
]

WAIT = 20_000
PRESETS = {"Pirate": "Talk like a pirate.", "Translator": "Translate into English."}


@pytest.fixture(scope="module")
def webchat_server(tmp_path_factory, fake_upstream_server):
    """A live server with two models, and presets of alice's."""
    presets = "".join(
        f"Preset.objects.create(owner=alice, name={name!r}, system_prompt={prompt!r});"
        for name, prompt in PRESETS.items()
    )
    with running_webchat(
        tmp_path_factory.mktemp("live-pickers"),
        fake_upstream_server,
        WEBCHAT_MODELS="fake-model,other-model",
    ) as server:
        server.manage(
            "shell",
            "-c",
            "from conversations.models import Preset;"
            "from django.contrib.auth import get_user_model;"
            "alice = get_user_model().objects.get(username='alice');" + presets,
        )
        yield server


@pytest.fixture(params=sorted(SCREENS))
def screen(request) -> str:
    return request.param


@pytest.fixture
def page(browser, webchat_server, screen):
    with signed_in_page(browser, webchat_server, viewport=SCREENS[screen]) as page:
        yield page


def _conversation(page, fake_upstream_server) -> None:
    fake_upstream_server.reset(reply="Ready.")
    page.fill("#composer-text", "Hello")
    page.press("#composer-text", "Enter")
    page.wait_for_url("**/c/*/")
    page.wait_for_selector("article.message-assistant[data-status=complete]", timeout=WAIT)


def _send(page, text: str, replies: int) -> None:
    page.fill("#composer-text", text)
    page.press("#composer-text", "Enter")
    page.wait_for_function(
        "() => document.querySelectorAll('article.message-assistant[data-status=complete]')"
        f".length === {replies}",
        timeout=WAIT,
    )


def test_the_model_menu_by_mouse_and_keyboard(page, fake_upstream_server):
    from playwright.sync_api import expect

    _conversation(page, fake_upstream_server)
    menu = page.locator("#model-menu")
    summary = menu.locator("summary")

    summary.click()
    expect(menu.get_by_role("menuitemradio", name="fake-model")).to_be_focused()
    menu.get_by_role("menuitemradio", name="other-model").click()
    expect(page.locator("#chat-model")).to_have_text("other-model")
    expect(page.locator("#model-menu")).not_to_have_attribute("open", "")
    _send(page, "Which model?", 2)
    assert fake_upstream_server.requests[-1].body["model"] == "other-model"

    # Enter opens it on the chosen model, arrows move, Escape closes and gives the focus back.
    summary.focus()
    page.keyboard.press("Enter")
    expect(menu.get_by_role("menuitemradio", name="other-model")).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(menu.get_by_role("menuitemradio", name="fake-model")).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu).not_to_have_attribute("open", "")
    expect(summary).to_be_focused()

    page.keyboard.press(" ")
    expect(menu.get_by_role("menuitemradio", name="other-model")).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(menu.get_by_role("menuitemradio", name="fake-model")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#chat-model")).to_have_text("fake-model")
    expect(page.locator("#model-menu summary")).to_be_focused()
    _send(page, "And now?", 3)
    assert fake_upstream_server.requests[-1].body["model"] == "fake-model"


def test_slash_in_the_empty_composer_searches_the_presets(page, fake_upstream_server):
    from playwright.sync_api import expect

    _conversation(page, fake_upstream_server)
    menu = page.locator("#preset-menu")
    textarea = page.locator("#composer-text")

    textarea.press_sequentially("/")
    expect(menu).to_have_attribute("open", "")
    expect(menu.locator("[data-preset]:visible")).to_have_count(len(PRESETS))
    textarea.press("Escape")
    expect(menu).not_to_have_attribute("open", "")
    assert textarea.input_value() == "/"

    textarea.fill("")
    textarea.press_sequentially("/pir")
    expect(menu.locator(".picker-item:visible")).to_have_text(["Pirate"])
    textarea.press_sequentially("x")
    expect(menu.locator(".picker-item:visible")).to_have_count(0)
    expect(menu.locator("[data-no-match]")).to_be_visible()
    textarea.press("Backspace")
    textarea.press("Enter")

    expect(page.locator("#composer-note")).to_have_text(
        "The system prompt is now the preset “Pirate”."
    )
    expect(menu).not_to_have_attribute("open", "")
    assert textarea.input_value() == ""
    expect(textarea).to_be_focused()
    assert page.locator("article.message-user").count() == 1  # Enter applied, sent nothing

    _send(page, "Ahoy?", 2)
    body = fake_upstream_server.requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": PRESETS["Pirate"]}

    # A message beginning with "/" that names no preset is sent as it is.
    textarea.press_sequentially("/etc/hosts")
    expect(menu.locator("[data-no-match]")).to_be_visible()
    textarea.press("Enter")
    page.wait_for_function(
        "() => document.querySelectorAll('article.message-assistant[data-status=complete]')"
        ".length === 3",
        timeout=WAIT,
    )
    assert fake_upstream_server.requests[-1].body["messages"][-1]["content"] == "/etc/hosts"
    expect(menu).not_to_have_attribute("open", "")


def test_a_new_chat_starts_from_the_preset_chosen_in_the_menu(page, fake_upstream_server):
    from playwright.sync_api import expect

    fake_upstream_server.reset(reply="Ready.")
    page.click("#preset-menu summary")
    translator = page.locator("#preset-menu [data-preset]", has_text="Translator")
    preset_id = translator.get_attribute("value")
    translator.click()
    expect(page.locator("#composer-preset")).to_have_value(preset_id)
    page.fill("#composer-text", "Bonjour")
    page.press("#composer-text", "Enter")
    page.wait_for_url("**/c/*/")
    page.wait_for_selector("article.message-assistant[data-status=complete]", timeout=WAIT)
    body = fake_upstream_server.requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": PRESETS["Translator"]}


def test_the_placeholder_fits_on_one_line_beside_the_menus(page):
    textarea = page.locator("#composer-text")
    fits = textarea.evaluate(
        """(box) => {
          const style = getComputedStyle(box);
          const padding = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom);
          const context = document.createElement("canvas").getContext("2d");
          context.font = style.font;
          const text = context.measureText(box.placeholder).width;
          const sides = parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
          const room = box.clientWidth - sides;
          return {
            oneLine: box.scrollHeight <= parseFloat(style.lineHeight) + padding + 1,
            text, room,
          };
        }"""
    )
    assert fits["oneLine"], fits
    assert fits["text"] <= fits["room"], fits


def test_the_plus_menu_of_a_phone_attaches_images(browser, webchat_server):
    from playwright.sync_api import expect

    with signed_in_page(browser, webchat_server, viewport=SCREENS["phone"]) as page:
        expect(page.locator("#composer label.button-attach")).to_be_hidden()
        page.click("#preset-menu summary")
        with page.expect_file_chooser() as chooser:
            page.get_by_role("menuitem", name="Attach images").click()
        picture = {"name": "photo.png", "mimeType": "image/png", "buffer": image_files.png()}
        chooser.value.set_files([picture])
        expect(page.locator("#composer-attachments .composer-attachment")).to_have_count(1)


def _top(page, selector: str) -> float:
    return page.locator(selector).bounding_box()["y"]


def test_the_settings_drawer_leaves_the_chat_in_place_and_shows_every_option(
    page, fake_upstream_server, screen
):
    from playwright.sync_api import expect

    _conversation(page, fake_upstream_server)
    messages_top = _top(page, "#messages")
    link = page.locator("a[aria-controls=settings-panel]")
    link.click()
    drawer = page.locator("#settings-panel .settings-drawer")
    expect(drawer.locator("#settings-model")).to_be_focused()
    assert _top(page, "#messages") == messages_top

    box = drawer.bounding_box()
    size = SCREENS[screen]
    if screen == "desktop":  # a column at the right, the chat usable beside it
        assert box["x"] + box["width"] == size["width"]
        assert 360 <= box["width"] <= 440
        page.fill("#composer-text", "Typed beside the drawer")
        expect(drawer).to_be_visible()
    else:  # a sheet from the bottom
        assert box["y"] + box["height"] == size["height"]
        assert box["width"] == size["width"]

    # No option's text is cut: each select is as wide as its longest option needs.
    selects = drawer.locator("select")
    assert selects.count() == 2
    for index in range(selects.count()):
        widths = selects.nth(index).evaluate(
            """(select) => {
              const style = getComputedStyle(select);
              const context = document.createElement("canvas").getContext("2d");
              context.font = style.font;
              const longest = Math.max(
                ...Array.from(select.options, (o) => context.measureText(o.text).width));
              return {scroll: select.scrollWidth, client: select.clientWidth, longest};
            }"""
        )
        assert widths["scroll"] <= widths["client"], widths
        # Room for the text beside the padding and the arrow.
        assert widths["longest"] + 48 <= widths["client"], widths

    page.keyboard.press("Escape")
    expect(page.locator("#settings-panel")).to_be_hidden()
    expect(link).to_be_focused()
    assert _top(page, "#messages") == messages_top

    link.click()
    expect(drawer.locator("#settings-model")).to_be_focused()
    if screen == "phone":  # the backdrop above the sheet closes it
        page.mouse.click(size["width"] / 2, 20)
    else:
        drawer.locator(".settings-close").click()
    expect(page.locator("#settings-panel")).to_be_hidden()
    expect(link).to_be_focused()


def test_a_preset_edited_in_the_drawer_shows_its_new_name_in_the_composer_menu(
    page, fake_upstream_server, screen
):
    from playwright.sync_api import expect

    _conversation(page, fake_upstream_server)
    page.click("a[aria-controls=settings-panel]")
    drawer = page.locator("#settings-panel .settings-drawer")
    drawer.locator("#settings-system_prompt").fill("Review the code.")
    drawer.locator("#settings-preset-name").fill(f"Reviewer {screen}")
    drawer.get_by_role("button", name="Save as preset").click()
    entry = drawer.locator(".preset", has_text=f"Reviewer {screen}")
    expect(entry).to_be_visible()

    entry.locator("summary").click()
    entry.get_by_label("Name").fill(f"Bug hunter {screen}")
    entry.get_by_role("button", name="Save preset").click()
    entry = drawer.locator(".preset", has_text=f"Bug hunter {screen}")
    expect(entry).to_contain_text("Preset saved.")

    drawer.locator(".settings-close").click()
    page.click("#preset-menu summary")
    menu = page.locator("#preset-menu")
    expect(menu.locator("[data-preset]", has_text=f"Bug hunter {screen}")).to_be_visible()
    expect(menu.locator("[data-preset]", has_text=f"Reviewer {screen}")).to_have_count(0)


def test_without_javascript_the_menus_and_the_settings_are_forms_and_pages(
    browser, webchat_server, fake_upstream_server
):
    from playwright.sync_api import expect

    options = {"viewport": SCREENS["desktop"], "java_script_enabled": False}
    with signed_in_page(browser, webchat_server, **options) as page:
        fake_upstream_server.reset(reply="Ready.")
        page.fill("#composer-text", "Hello")
        page.click("#composer .button-send")
        page.wait_for_url("**/c/*/")
        chat_url = page.url

        page.click("#model-menu summary")
        page.get_by_role("menuitemradio", name="other-model").click()
        page.wait_for_url(chat_url)
        expect(page.locator("#chat-model")).to_have_text("other-model")

        # A preset applied from the composer keeps the text typed in it.
        page.fill("#composer-text", "Still here")
        page.click("#preset-menu summary")
        page.locator("#preset-menu [data-preset]", has_text="Pirate").click()
        expect(page.locator("#composer-note")).to_have_text(
            "The system prompt is now the preset “Pirate”."
        )
        assert page.input_value("#composer-text") == "Still here"

        page.click("a[aria-controls=settings-panel]")
        page.wait_for_url("**/settings/")
        expect(page.locator("#sidebar")).to_be_visible()
        expect(page.locator("#settings-system_prompt")).to_have_value(PRESETS["Pirate"])
        expect(page.locator("#settings-model")).to_have_value("other-model")
