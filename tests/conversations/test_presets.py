"""System prompts saved under a name: the presets page, editing one, the settings drawer's
"Save as preset", applying one from the composer, and starting a new conversation from one."""

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from conversations.models import Conversation, Message, Preset
from tests.factories import ConversationFactory
from tests.generation_helpers import HTMX, finished, latest_reply

PRESETS_URL = reverse("conversations:presets")


@pytest.fixture(autouse=True)
def _two_models(settings):
    settings.WEBCHAT_MODELS = ["model-a", "model-b"]


@pytest.fixture
def preset(owner) -> Preset:
    return Preset.objects.create(owner=owner, name="Pirate", system_prompt="Talk like a pirate.")


def delete_url(preset: Preset) -> str:
    return reverse("conversations:preset-delete", args=[preset.pk])


def panel_preset_url(conversation: Conversation) -> str:
    return reverse("conversations:settings-preset", args=[conversation.pk])


def test_the_page_lists_only_my_presets(owner_client, preset, outsider):
    Preset.objects.create(owner=outsider, name="Secret", system_prompt="Someone else's.")
    response = owner_client.get(PRESETS_URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Pirate" in page
    assert "Talk like a pirate." in page
    assert f'action="{delete_url(preset)}"' in page
    assert "Secret" not in page


def test_it_saves_a_preset(owner_client, owner):
    data = {"name": "  Terse  ", "system_prompt": "Answer in five words."}
    response = owner_client.post(PRESETS_URL, data)
    assert response.status_code == 302
    assert response["Location"] == PRESETS_URL
    saved = Preset.objects.get(owner=owner)
    assert (saved.name, saved.system_prompt) == ("Terse", "Answer in five words.")


@pytest.mark.parametrize("name", ["Pirate", "pirate"])
def test_a_name_in_use_is_refused_and_nothing_is_saved(owner_client, preset, name):
    response = owner_client.post(PRESETS_URL, {"name": name, "system_prompt": "Other."})
    assert response.status_code == 422
    assert f"You already have a preset named “{name}”." in response.content.decode()
    assert list(Preset.objects.values_list("system_prompt", flat=True)) == ["Talk like a pirate."]


def test_another_user_may_use_the_same_name(outsider_client, preset, outsider):
    response = outsider_client.post(PRESETS_URL, {"name": "Pirate", "system_prompt": "Arr."})
    assert response.status_code == 302
    assert Preset.objects.filter(name="Pirate").count() == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "system_prompt": "Be brief."}, "Give the preset a name."),
        ({"name": "   ", "system_prompt": "Be brief."}, "Give the preset a name."),
        ({"name": "x" * 101, "system_prompt": "Be brief."}, "at most 100 characters"),
        ({"name": "Brief", "system_prompt": "  "}, "Write the system prompt to save."),
    ],
)
def test_a_preset_needs_a_name_and_a_prompt(owner_client, data, message):
    response = owner_client.post(PRESETS_URL, data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Preset.objects.exists()


def test_it_deletes_my_preset(owner_client, preset):
    response = owner_client.post(delete_url(preset))
    assert response.status_code == 302
    assert response["Location"] == PRESETS_URL
    assert not Preset.objects.exists()


def test_deleting_in_the_drawer_removes_it_from_the_composer_menu_too(owner_client, preset):
    response = owner_client.post(delete_url(preset), headers=HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert f'<button id="composer-preset-{preset.pk}" hx-swap-oob="delete">' in page
    assert not Preset.objects.exists()


def test_deleting_without_javascript_returns_to_the_page_it_came_from(owner_client, owner, preset):
    chat = ConversationFactory(owner=owner, model="model-a")
    back = reverse("conversations:settings", args=[chat.pk])
    response = owner_client.post(delete_url(preset), {"next": back})
    assert response.status_code == 302
    assert response["Location"] == back


def test_deleting_another_users_preset_answers_404_and_keeps_it(outsider_client, preset):
    assert outsider_client.post(delete_url(preset)).status_code == 404
    assert Preset.objects.filter(pk=preset.pk).exists()


def test_deleting_requires_post(owner_client, preset):
    assert owner_client.get(delete_url(preset)).status_code == 405
    assert Preset.objects.filter(pk=preset.pk).exists()


# --- Editing a preset --------------------------------------------------------------------


def edit_url(preset: Preset) -> str:
    return reverse("conversations:preset-edit", args=[preset.pk])


def test_the_edit_page_shows_the_preset_in_the_normal_layout(owner_client, preset):
    response = owner_client.get(edit_url(preset))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="sidebar"' in page
    assert (
        f'name="name" value="Pirate" maxlength="100" required id="preset-{preset.pk}-name"' in page
    )
    assert "Talk like a pirate.</textarea>" in page


def test_the_owner_renames_and_rewrites_a_preset(owner_client, preset):
    data = {"name": "  Captain  ", "system_prompt": "Talk like a captain."}
    response = owner_client.post(edit_url(preset), data)
    assert response.status_code == 302
    assert response["Location"] == PRESETS_URL
    preset.refresh_from_db()
    assert (preset.name, preset.system_prompt) == ("Captain", "Talk like a captain.")


def test_editing_in_the_drawer_answers_the_entry_and_the_composer_menus_new_name(
    owner_client, preset
):
    data = {"name": "Captain", "system_prompt": "Talk like a captain."}
    response = owner_client.post(edit_url(preset), data, headers=HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert page.startswith(f'<li class="preset" id="preset-{preset.pk}">')
    assert "Preset saved." in page
    assert 'value="Captain"' in page  # its form, to edit it again, holds what was saved
    assert "Talk like a captain.</textarea>" in page
    assert f'<span id="composer-preset-{preset.pk}-name" hx-swap-oob="true">Captain</span>' in page


def test_a_preset_may_keep_its_name_in_another_case(owner_client, preset):
    response = owner_client.post(edit_url(preset), {"name": "PIRATE", "system_prompt": "Arr."})
    assert response.status_code == 302
    preset.refresh_from_db()
    assert (preset.name, preset.system_prompt) == ("PIRATE", "Arr.")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "terse", "system_prompt": "Changed."}, "You already have a preset named"),
        ({"name": "", "system_prompt": "Changed."}, "Give the preset a name."),
        ({"name": "x" * 101, "system_prompt": "Changed."}, "at most 100 characters"),
        ({"name": "Changed", "system_prompt": " "}, "Write the system prompt to save."),
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_a_refused_edit_shows_why_keeps_what_was_typed_and_changes_nothing(
    owner_client, owner, preset, data, message, htmx
):
    Preset.objects.create(owner=owner, name="Terse", system_prompt="Be terse.")
    response = owner_client.post(edit_url(preset), data, headers=HTMX if htmx else {})
    assert response.status_code == 422
    page = response.content.decode()
    assert message in page
    assert "Nothing was saved" in page
    assert 'aria-invalid="true"' in page
    assert "Changed" in page or "x" * 101 in page  # what was typed stays in the form
    preset.refresh_from_db()
    assert (preset.name, preset.system_prompt) == ("Pirate", "Talk like a pirate.")


@pytest.mark.parametrize("method", ["get", "post"])
def test_another_users_preset_cannot_be_edited(outsider_client, preset, method):
    data = {"name": "Mine now", "system_prompt": "Stolen."}
    response = getattr(outsider_client, method)(edit_url(preset), data)
    assert response.status_code == 404
    preset.refresh_from_db()
    assert (preset.name, preset.system_prompt) == ("Pirate", "Talk like a pirate.")


def test_the_drawer_lists_my_presets_to_edit(owner_client, owner, preset, outsider):
    Preset.objects.create(owner=outsider, name="Secret", system_prompt="Theirs.")
    chat = ConversationFactory(owner=owner, model="model-a")
    url = reverse("conversations:settings", args=[chat.pk])
    page = owner_client.get(url, headers=HTMX).content.decode()
    assert f'hx-post="{edit_url(preset)}"' in page
    assert f'hx-post="{delete_url(preset)}"' in page
    assert f'<input type="hidden" name="next" value="{url}">' in page
    assert "Secret" not in page


def test_the_presets_page_has_the_sidebar(owner_client, preset):
    page = owner_client.get(PRESETS_URL).content.decode()
    assert 'id="sidebar"' in page
    assert f'action="{edit_url(preset)}"' in page


# --- "Save as preset" in the settings panel ------------------------------------------------


def test_the_panel_saves_its_system_prompt_as_a_preset_without_saving_the_settings(
    owner_client, owner
):
    chat = ConversationFactory(owner=owner, model="model-a", system_prompt="Old prompt.")
    data = {"model": "model-b", "system_prompt": "New prompt.", "preset_name": "Fresh"}
    response = owner_client.post(panel_preset_url(chat), data, headers=HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Saved the system prompt as the preset “Fresh”." in page
    assert "New prompt." in page  # what was typed stays in the panel
    saved = Preset.objects.get(owner=owner)
    assert (saved.name, saved.system_prompt) == ("Fresh", "New prompt.")
    # The composer's preset menu comes with it.
    assert '<details class="picker preset-picker" id="preset-menu" hx-swap-oob="true">' in page
    assert f'<span id="composer-preset-{saved.pk}-name">Fresh</span>' in page
    chat.refresh_from_db()
    assert (chat.model, chat.system_prompt) == ("model-a", "Old prompt.")


def test_saving_as_preset_without_javascript_returns_to_the_settings_page(owner_client, owner):
    chat = ConversationFactory(owner=owner, model="model-a")
    data = {"model": "model-a", "system_prompt": "Be kind.", "preset_name": "Kind"}
    response = owner_client.post(panel_preset_url(chat), data)
    assert response.status_code == 302
    assert response["Location"] == reverse("conversations:settings", args=[chat.pk])
    assert Preset.objects.filter(owner=owner, name="Kind").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"system_prompt": "Arr.", "preset_name": "Pirate"}, "You already have a preset named"),
        ({"system_prompt": "Arr.", "preset_name": ""}, "Give the preset a name."),
        ({"system_prompt": "", "preset_name": "Empty"}, "Write the system prompt to save."),
    ],
)
def test_the_panel_refuses_a_preset_it_cannot_save(owner_client, owner, preset, data, message):
    chat = ConversationFactory(owner=owner, model="model-a")
    response = owner_client.post(panel_preset_url(chat), {"model": "model-a", **data}, headers=HTMX)
    assert response.status_code == 422
    page = response.content.decode()
    assert message in page
    assert 'id="settings-preset-name" name="preset_name"' in page
    assert 'aria-describedby="settings-preset-error"' in page
    assert list(Preset.objects.all()) == [preset]


def test_the_panel_of_another_users_conversation_saves_no_preset(outsider_client, owner):
    chat = ConversationFactory(owner=owner, model="model-a", system_prompt="Mine.")
    data = {"system_prompt": "Mine.", "preset_name": "Stolen"}
    assert outsider_client.post(panel_preset_url(chat), data).status_code == 404
    assert not Preset.objects.exists()


# --- A new conversation from a preset ------------------------------------------------------


def test_the_new_chat_composer_offers_my_presets_only(owner_client, preset, outsider):
    other = Preset.objects.create(owner=outsider, name="Secret", system_prompt="Theirs.")
    page = owner_client.get(reverse("conversations:index")).content.decode()
    assert '<details class="picker preset-picker" id="preset-menu">' in page
    assert f'<span id="composer-preset-{preset.pk}-name">Pirate</span>' in page
    assert "Secret" not in page
    assert f'value="{other.pk}"' not in page


def test_the_composer_of_a_conversation_applies_presets_to_it(owner_client, owner, preset):
    chat = ConversationFactory(owner=owner, model="model-a")
    page = owner_client.get(chat.get_absolute_url()).content.decode()
    apply_url = reverse("conversations:preset-apply", args=[chat.pk])
    assert f'name="apply_preset" value="{preset.pk}" formaction="{apply_url}"' in page
    assert 'name="preset"' not in page  # that is for a new conversation


@pytest.mark.django_db(transaction=True)
async def test_a_new_conversation_from_a_preset_starts_with_its_prompt_and_forwards_it(
    async_owner_client, owner, fake_upstream
):
    preset = await Preset.objects.acreate(
        owner=owner, name="Pirate", system_prompt="Talk like a pirate."
    )
    data = {"text": "Hello", "model": "model-b", "preset": str(preset.pk)}
    response = await async_owner_client.post(reverse("conversations:create"), data)
    assert response.status_code == 302

    conversation = await Conversation.objects.aget(owner=owner)
    assert (conversation.model, conversation.system_prompt) == ("model-b", "Talk like a pirate.")
    reply = await finished(await latest_reply(conversation))
    assert reply.status == Message.Status.COMPLETE
    body = fake_upstream.requests[-1].body
    assert body["model"] == "model-b"
    assert body["messages"] == [
        {"role": "system", "content": "Talk like a pirate."},
        {"role": "user", "content": "Hello"},
    ]

    # The conversation keeps its own copy: changing the preset changes nothing in it.
    await sync_to_async(Preset.objects.filter(pk=preset.pk).update)(system_prompt="Changed.")
    await conversation.arefresh_from_db()
    assert conversation.system_prompt == "Talk like a pirate."


@pytest.mark.parametrize("preset_id", ["other", "999999", "abc"])
def test_starting_from_a_preset_not_mine_is_refused_and_creates_nothing(
    owner_client, outsider, preset_id
):
    other = Preset.objects.create(owner=outsider, name="Secret", system_prompt="Theirs.")
    preset_id = str(other.pk) if preset_id == "other" else preset_id
    data = {"text": "Hello", "preset": preset_id}
    response = owner_client.post(reverse("conversations:create"), data, headers=HTMX)
    assert response.status_code == 422
    assert "That preset does not exist" in response.content.decode()
    assert not Conversation.objects.exists()


# --- Applying a preset from the composer ---------------------------------------------------


def apply_url(conversation: Conversation) -> str:
    return reverse("conversations:preset-apply", args=[conversation.pk])


def test_applying_a_preset_makes_its_prompt_the_conversations(owner_client, owner, preset):
    chat = ConversationFactory(owner=owner, model="model-a", system_prompt="Old.")
    response = owner_client.post(apply_url(chat), {"apply_preset": str(preset.pk)}, headers=HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert page.startswith('<details class="picker preset-picker" id="preset-menu">')
    assert "The system prompt is now the preset “Pirate”." in page
    chat.refresh_from_db()
    assert chat.system_prompt == "Talk like a pirate."


def test_applying_without_javascript_keeps_the_text_typed(owner_client, owner, preset):
    chat = ConversationFactory(owner=owner, model="model-a")
    data = {"apply_preset": str(preset.pk), "text": "Half a thought"}
    response = owner_client.post(apply_url(chat), data)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Half a thought</textarea>" in page
    assert "The system prompt is now the preset “Pirate”." in page


@pytest.mark.parametrize("preset_id", ["other", "999999", "abc", ""])
def test_applying_a_preset_not_mine_is_refused_and_changes_nothing(
    owner_client, owner, outsider, preset_id
):
    other = Preset.objects.create(owner=outsider, name="Secret", system_prompt="Theirs.")
    chat = ConversationFactory(owner=owner, model="model-a", system_prompt="Mine.")
    preset_id = str(other.pk) if preset_id == "other" else preset_id
    response = owner_client.post(apply_url(chat), {"apply_preset": preset_id}, headers=HTMX)
    assert response.status_code == 422
    assert "That preset does not exist" in response.content.decode()
    chat.refresh_from_db()
    assert chat.system_prompt == "Mine."


def test_a_preset_cannot_be_applied_to_another_users_conversation(outsider_client, owner, preset):
    chat = ConversationFactory(owner=owner, model="model-a", system_prompt="Mine.")
    response = outsider_client.post(apply_url(chat), {"apply_preset": str(preset.pk)})
    assert response.status_code == 404
    chat.refresh_from_db()
    assert chat.system_prompt == "Mine."


def test_the_preset_chosen_for_a_new_chat_is_kept_for_it(owner_client, preset):
    url = reverse("conversations:new-chat-preset")
    response = owner_client.post(url, {"new_chat_preset": str(preset.pk)}, headers=HTMX)
    assert response.status_code == 200
    assert '<input type="hidden" id="composer-preset" name="preset" value="' in (
        page := response.content.decode()
    )
    assert f'value="{preset.pk}">' in page
    index = owner_client.get(reverse("conversations:index")).content.decode()
    assert f'name="preset" value="{preset.pk}"' in index
    assert '<span class="visually-hidden">Preset: </span>Pirate' in index

    owner_client.post(url, {"new_chat_preset": ""}, headers=HTMX)
    index = owner_client.get(reverse("conversations:index")).content.decode()
    assert 'name="preset" value=""' in index


def test_another_users_preset_cannot_be_chosen_for_a_new_chat(outsider_client, preset):
    url = reverse("conversations:new-chat-preset")
    response = outsider_client.post(url, {"new_chat_preset": str(preset.pk)}, headers=HTMX)
    assert response.status_code == 422
    assert "That preset does not exist" in response.content.decode()
    index = outsider_client.get(reverse("conversations:index")).content.decode()
    assert 'name="preset" value=""' in index
