"""The settings panel of a conversation, and the user's system-prompt presets. Off the chat
path, so sync."""

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods, require_POST

from conversations import conversation_settings
from conversations.forms import PresetForm
from conversations.lookups import conversation_for_user
from conversations.models import Conversation, Preset


def _settings_panel(
    request: HttpRequest,
    conversation: Conversation,
    form: forms.Form,
    *,
    preset_form: forms.Form | None = None,
    note: str = "",
    saved: bool = False,
    status: int = 200,
) -> HttpResponse:
    """The panel (htmx), or a page of its own holding it."""
    if request.method == "GET":
        # Just opened: the keyboard goes on in the panel.
        form.fields["model"].widget.attrs["autofocus"] = True
    context = {
        "conversation": conversation,
        "form": form,
        "preset_form": preset_form,
        "note": note,
        "saved": saved,
    }
    template = (
        "conversations/settings.html#panel" if request.htmx else "conversations/settings.html"
    )
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
    """Save the system prompt in the panel as a preset; the other settings stay unsaved."""
    conversation = conversation_for_user(request.user, conversation_id)
    data = {
        "name": request.POST.get("preset_name", ""),
        "system_prompt": request.POST.get("system_prompt", ""),
    }
    # The panel keeps what was typed, saved or not.
    form = conversation_settings.settings_form(conversation, request.POST)
    try:
        preset = conversation_settings.preset_create(owner=request.user, data=data)
    except conversation_settings.Refused as refused:
        return _settings_panel(request, conversation, form, preset_form=refused.form, status=422)
    if not request.htmx:
        return redirect("conversations:settings", conversation.pk)
    note = gettext("Saved the system prompt as the preset “%(name)s”.") % {"name": preset.name}
    return _settings_panel(request, conversation, form, note=note)


@require_http_methods(["GET", "POST"])
def preset_list(request: HttpRequest) -> HttpResponse:
    """The user's presets, to delete, and a form to save another."""
    user = request.user
    form = PresetForm()
    status = 200
    if request.method == "POST":
        try:
            conversation_settings.preset_create(owner=user, data=request.POST)
        except conversation_settings.Refused as refused:
            form, status = refused.form, 422
        else:
            return redirect("conversations:presets")
    context = {
        "presets": Preset.objects.filter(owner=user),
        "form": form,
    }
    return render(request, "conversations/presets.html", context, status=status)


@require_POST
def preset_delete(request: HttpRequest, preset_id: int) -> HttpResponse:
    user = request.user
    try:
        preset = Preset.objects.get(pk=preset_id, owner=user)
    except Preset.DoesNotExist:
        raise Http404("No such preset.") from None
    preset.delete()
    return redirect("conversations:presets")
