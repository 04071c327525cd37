"""A conversation's settings (model, system prompt, sampling), presets of system prompts,
and the upstream request they make.

Settings left empty are stored empty and never sent, so the provider's defaults apply.
These are synchronous; async callers wrap them with ``sync_to_async``.
"""

from collections.abc import Mapping

from django import forms
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.translation import gettext, gettext_lazy

from accounts import access
from conversations.forms import ConversationSettingsForm, ModelChoiceForm, PresetForm
from conversations.models import Conversation, Message, Preset
from conversations.services import MessageRefused
from conversations.upstream.client import ChatRequest

SETTINGS_FIELDS = (
    "model",
    "system_prompt",
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "reasoning_effort",
)
NO_SUCH_PRESET = gettext_lazy("That preset does not exist (any more). Choose another one.")


class Refused(Exception):
    """Input that was not saved; ``form`` holds it, with a message for each bad field."""

    def __init__(self, form: forms.Form) -> None:
        super().__init__(form.errors.as_text())
        self.form = form


def model_choices(conversation: Conversation) -> list[str]:
    """The models the owner may give ``conversation``: the configured ones allowed to them,
    and its own while they may still use it (one no longer configured, say)."""
    owner = conversation.owner
    models = access.allowed_models(owner)
    if conversation.model not in models and access.model_allowed(owner, conversation.model):
        models.insert(0, conversation.model)
    return models


def settings_form(
    conversation: Conversation, data: Mapping[str, str] | None = None
) -> ConversationSettingsForm:
    """The settings form of ``conversation``, showing its settings or bound to ``data``."""
    initial = {name: getattr(conversation, name) for name in SETTINGS_FIELDS}
    return ConversationSettingsForm(
        data, initial=initial, models=model_choices(conversation), auto_id="settings-%s"
    )


def settings_update(*, conversation: Conversation, data: Mapping[str, str]) -> Conversation:
    """Save the settings in ``data``; any bad value refuses them all (``Refused``)."""
    form = settings_form(conversation, data)
    if not form.is_valid():
        raise Refused(form)
    for name in SETTINGS_FIELDS:
        setattr(conversation, name, form.cleaned_data[name])
    # Not updated_at: changing settings is not activity that reorders the sidebar.
    conversation.save(update_fields=SETTINGS_FIELDS)
    return conversation


def conversation_model_set(*, conversation: Conversation, data: Mapping[str, str]) -> Conversation:
    """Give ``conversation`` the model in ``data``, one its owner may use (else ``Refused``)."""
    form = ModelChoiceForm(data, models=model_choices(conversation))
    if not form.is_valid():
        raise Refused(form)
    conversation.model = form.cleaned_data["model"]
    conversation.save(update_fields=["model"])
    return conversation


def new_chat_model_check(*, user: AbstractBaseUser, data: Mapping[str, str]) -> str:
    """The model in ``data`` for the user's next new chat, if they may use it (else ``Refused``)."""
    form = ModelChoiceForm(data, models=access.allowed_models(user))
    if not form.is_valid():
        raise Refused(form)
    return form.cleaned_data["model"]


def chat_request(*, reply: Message, messages: list[dict]) -> ChatRequest:
    """The upstream request generating ``reply`` after ``messages``: the reply's model, the
    conversation's settings as they are now, and its system prompt first when it has one."""
    conversation = Conversation.objects.only(*SETTINGS_FIELDS).get(pk=reply.conversation_id)
    if conversation.system_prompt:
        messages = [{"role": "system", "content": conversation.system_prompt}, *messages]
    return ChatRequest(
        model=reply.model,
        messages=messages,
        max_tokens=conversation.max_tokens,
        temperature=conversation.temperature,
        top_p=conversation.top_p,
        top_k=conversation.top_k,
        reasoning_effort=conversation.reasoning_effort or None,
    )


def preset_create(*, owner: AbstractBaseUser, data: Mapping[str, str]) -> Preset:
    """Save a preset from ``data`` (name, system_prompt); a name in use is refused."""
    form = PresetForm(data)
    if form.is_valid():
        name = form.cleaned_data["name"]
        if not _name_taken(owner, name):
            try:
                with transaction.atomic():
                    return Preset.objects.create(owner=owner, **form.cleaned_data)
            except IntegrityError:
                pass  # the same name, saved at the same moment by another request
        _refuse_name(form, name)
    raise Refused(form)


def _name_taken(owner: AbstractBaseUser, name: str, *, other_than: Preset | None = None) -> bool:
    presets = Preset.objects.filter(owner=owner, name__iexact=name)
    if other_than is not None:
        presets = presets.exclude(pk=other_than.pk)
    return presets.exists()


def _refuse_name(form: PresetForm, name: str) -> None:
    form.add_error(
        "name",
        gettext("You already have a preset named “%(name)s”. Choose another name.")
        % {"name": name},
    )


def preset_update(*, preset: Preset, data: Mapping[str, str]) -> Preset:
    """Rename ``preset`` and change its system prompt; a bad value or a name in use by
    another of the owner's presets refuses both (``Refused``)."""
    form = PresetForm(data, auto_id=f"preset-{preset.pk}-%s")
    if form.is_valid():
        name = form.cleaned_data["name"]
        if not _name_taken(preset.owner, name, other_than=preset):
            changes = {"name": name, "system_prompt": form.cleaned_data["system_prompt"]}
            try:
                with transaction.atomic():
                    Preset.objects.filter(pk=preset.pk).update(**changes)
            except IntegrityError:
                pass  # the same name, saved at the same moment by another request
            else:
                preset.name, preset.system_prompt = changes["name"], changes["system_prompt"]
                return preset
        _refuse_name(form, name)
    raise Refused(form)


def preset_for_owner(*, owner: AbstractBaseUser, preset_id: str) -> Preset:
    """The owner's preset ``preset_id``; another user's is refused like a missing one."""
    preset = None
    if preset_id.isdecimal():
        preset = Preset.objects.filter(owner=owner, pk=int(preset_id)).first()
    if preset is None:
        raise MessageRefused(NO_SUCH_PRESET)
    return preset


def preset_system_prompt(*, owner: AbstractBaseUser, preset_id: str) -> str:
    """The system prompt of the owner's preset ``preset_id`` for a new conversation; no
    preset (an empty id) gives none. Another user's preset is refused like a missing one."""
    if not preset_id:
        return ""
    return preset_for_owner(owner=owner, preset_id=preset_id).system_prompt
