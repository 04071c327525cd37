"""The settings drawer of a conversation, the model menu, and the user's system-prompt
presets. Off the chat path, so sync."""

from django import forms
from django.contrib.auth.models import AbstractBaseUser
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods, require_POST

from accounts import access
from conversations import conversation_settings
from conversations.forms import PresetForm
from conversations.lookups import conversation_for_user, sidebar_conversations
from conversations.models import Conversation, Preset
from webchat.return_url import return_url

# The session key of the model the user's next new chat starts with.
NEW_CHAT_MODEL = "new_chat_model"


def _preset_form(preset: Preset) -> PresetForm:
    initial = {"name": preset.name, "system_prompt": preset.system_prompt}
    return PresetForm(initial=initial, auto_id=f"preset-{preset.pk}-%s")


def _preset_items(user: AbstractBaseUser) -> list[dict]:
    """The user's presets, each with its edit form."""
    return [
        {"preset": preset, "form": _preset_form(preset)}
        for preset in Preset.objects.filter(owner=user)
    ]


def _settings_panel(
    request: HttpRequest,
    conversation: Conversation,
    form: forms.Form,
    *,
    preset_form: forms.Form | None = None,
    note: str = "",
    saved: bool = False,
    presets_changed: bool = False,
    status: int = 200,
) -> HttpResponse:
    """The drawer (htmx), or a page of its own holding it."""
    if request.method == "GET":
        # Just opened: the keyboard goes on in the drawer.
        form.fields["model"].widget.attrs["autofocus"] = True
    context = {
        "conversation": conversation,
        "form": form,
        "preset_form": preset_form,
        "presets": Preset.objects.filter(owner=request.user),
        "preset_items": _preset_items(request.user),
        "next": reverse("conversations:settings", args=[conversation.pk]),
        "note": note,
        "saved": saved,
        "presets_changed": presets_changed,
        "models": conversation_settings.model_choices(conversation),
        "current_model": conversation.model,
    }
    if request.htmx:
        template = "conversations/settings.html#panel"
    else:
        template = "conversations/settings.html"
        context["sidebar_conversations"] = list(sidebar_conversations(request.user))
    return render(request, template, context, status=status)


@require_http_methods(["GET", "POST"])
def conversation_settings_edit(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = conversation_for_user(request.user, conversation_id)
    if request.method == "GET":
        form = conversation_settings.settings_form(conversation)
        return _settings_panel(request, conversation, form)
    try:
        conversation_settings.settings_update(conversation=conversation, data=request.POST)
    except conversation_settings.Refused as refused:
        return _settings_panel(request, conversation, refused.form, status=422)
    if not request.htmx:
        return redirect(conversation)
    form = conversation_settings.settings_form(conversation)
    return _settings_panel(request, conversation, form, note=gettext("Settings saved."), saved=True)


@require_POST
def settings_preset_create(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Save the system prompt in the drawer as a preset; the other settings stay unsaved."""
    conversation = conversation_for_user(request.user, conversation_id)
    data = {
        "name": request.POST.get("preset_name", ""),
        "system_prompt": request.POST.get("system_prompt", ""),
    }
    # The drawer keeps what was typed, saved or not.
    form = conversation_settings.settings_form(conversation, request.POST)
    try:
        preset = conversation_settings.preset_create(owner=request.user, data=data)
    except conversation_settings.Refused as refused:
        return _settings_panel(request, conversation, form, preset_form=refused.form, status=422)
    if not request.htmx:
        return redirect("conversations:settings", conversation.pk)
    note = gettext("Saved the system prompt as the preset “%(name)s”.") % {"name": preset.name}
    return _settings_panel(request, conversation, form, note=note, presets_changed=True)


def _model_menu(
    request: HttpRequest,
    conversation: Conversation | None,
    *,
    models: list[str],
    current: str,
    error: str = "",
    new_chat_chosen: bool = False,
) -> HttpResponse:
    """The model menu (htmx), or a page holding it: after a refused choice without JS."""
    context = {
        "new_chat_chosen": new_chat_chosen,
        "conversation": conversation,
        "models": models,
        "current_model": current,
        "model_error": error,
    }
    status = 422 if error else 200
    if request.htmx:
        return render(request, "conversations/partials/_model_menu.html", context, status=status)
    context["sidebar_conversations"] = list(sidebar_conversations(request.user))
    return render(request, "conversations/model_menu.html", context, status=status)


@require_POST
def conversation_model_set(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """Change the conversation's model, from the menu in its header."""
    conversation = conversation_for_user(request.user, conversation_id)
    models = conversation_settings.model_choices(conversation)
    try:
        conversation_settings.conversation_model_set(conversation=conversation, data=request.POST)
    except conversation_settings.Refused as refused:
        error = refused.form.errors["model"][0]
        return _model_menu(
            request, conversation, models=models, current=conversation.model, error=error
        )
    if not request.htmx:
        return redirect(conversation)
    return _model_menu(request, conversation, models=models, current=conversation.model)


@require_POST
def new_chat_model_set(request: HttpRequest) -> HttpResponse:
    """Choose the model the user's next new chat starts with (kept in their session)."""
    models = access.allowed_models(request.user)
    try:
        model = conversation_settings.new_chat_model_check(user=request.user, data=request.POST)
    except conversation_settings.Refused as refused:
        current = request.session.get(NEW_CHAT_MODEL, "")
        if current not in models:
            current = models[0] if models else ""
        error = refused.form.errors["model"][0]
        return _model_menu(request, None, models=models, current=current, error=error)
    request.session[NEW_CHAT_MODEL] = model
    if not request.htmx:
        return redirect("conversations:index")
    return _model_menu(request, None, models=models, current=model, new_chat_chosen=True)


def _get_preset_for_user(request: HttpRequest, preset_id: int) -> Preset:
    try:
        return Preset.objects.get(pk=preset_id, owner=request.user)
    except Preset.DoesNotExist:
        raise Http404("No such preset.") from None


def _presets_page(request: HttpRequest, form: forms.Form, status: int = 200) -> HttpResponse:
    context = {
        "preset_items": _preset_items(request.user),
        "next": reverse("conversations:presets"),
        "form": form,
        "sidebar_conversations": list(sidebar_conversations(request.user)),
    }
    return render(request, "conversations/presets.html", context, status=status)


@require_http_methods(["GET", "POST"])
def preset_list(request: HttpRequest) -> HttpResponse:
    """The user's presets, to edit or delete, and a form to save another."""
    if request.method == "GET":
        return _presets_page(request, PresetForm())
    try:
        conversation_settings.preset_create(owner=request.user, data=request.POST)
    except conversation_settings.Refused as refused:
        return _presets_page(request, refused.form, status=422)
    return redirect("conversations:presets")


@require_http_methods(["GET", "POST"])
def preset_edit(request: HttpRequest, preset_id: int) -> HttpResponse:
    """Rename a preset or change its system prompt: in place (htmx, in the settings drawer
    or on the presets page) or on a page of its own."""
    preset = _get_preset_for_user(request, preset_id)
    back = return_url(request, reverse("conversations:presets"))
    form = _preset_form(preset)
    status, note = 200, ""
    if request.method == "POST":
        try:
            conversation_settings.preset_update(preset=preset, data=request.POST)
        except conversation_settings.Refused as refused:
            form, status = refused.form, 422
        else:
            if not request.htmx:
                return redirect(back)
            form, note = _preset_form(preset), gettext("Preset saved.")
    context = {"preset": preset, "form": form, "next": back, "note": note}
    if request.htmx:
        # Its new name goes into the composer's preset menu too, where there is one.
        context["oob_label"] = bool(note)
        return render(request, "conversations/partials/_preset_item.html", context, status=status)
    context["sidebar_conversations"] = list(sidebar_conversations(request.user))
    return render(request, "conversations/preset_edit.html", context, status=status)


@require_POST
def preset_delete(request: HttpRequest, preset_id: int) -> HttpResponse:
    preset = _get_preset_for_user(request, preset_id)
    deleted_id = preset.pk
    preset.delete()
    if request.htmx:
        # The preset's entry goes (an empty swap), and so does its item in the composer's menu.
        context = {"preset_id": deleted_id}
        return render(request, "conversations/partials/_preset_deleted.html", context)
    return redirect(return_url(request, reverse("conversations:presets")))
