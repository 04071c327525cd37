from django import forms
from django.conf import settings
from django.core import validators
from django.utils.text import format_lazy
from django.utils.translation import gettext, gettext_lazy

from conversations.models import Conversation, Preset

# Bounds of the request settings; the database's integer columns hold far more.
TOKENS_MAX = 1_000_000
TOP_K_MAX = 1_000_000


def _number_messages(message: str) -> dict[str, str]:
    """One message for every way a number can be wrong: not a number, too small, too big."""
    return {code: message for code in ("invalid", "min_value", "max_value")}


def _limit_system_prompt(field: forms.CharField) -> None:
    """A system prompt goes with every request: it may be as long as a message."""
    limit = settings.WEBCHAT_MAX_MESSAGE_CHARS
    field.max_length = limit
    field.validators.append(validators.MaxLengthValidator(limit))
    field.widget.attrs["maxlength"] = str(limit)
    field.error_messages["max_length"] = gettext(
        "The system prompt may be at most %(limit)s characters long."
    ) % {"limit": f"{limit:,}"}


MODEL_ERRORS = {
    "required": gettext_lazy("Choose a model."),
    "invalid_choice": gettext_lazy("You may not use the model “%(value)s”. Choose another one."),
}


class ModelChoiceForm(forms.Form):
    """One of the models a user may use, chosen from the model menu."""

    model = forms.ChoiceField(error_messages=MODEL_ERRORS)

    def __init__(self, *args, models: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [(model, model) for model in models]


class ConversationSettingsForm(forms.Form):
    """A conversation's model and request settings; empty ones are not sent upstream."""

    model = forms.ChoiceField(label=gettext_lazy("Model"), error_messages=MODEL_ERRORS)
    system_prompt = forms.CharField(
        label=gettext_lazy("System prompt"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=gettext_lazy("Sent before the conversation, as its first message. Empty: none."),
    )
    temperature = forms.FloatField(
        label=gettext_lazy("Temperature"),
        required=False,
        min_value=0,
        max_value=2,
        help_text=gettext_lazy("From 0 to 2. Empty: the provider's default."),
        error_messages=_number_messages(gettext_lazy("Temperature must be a number from 0 to 2.")),
    )
    top_p = forms.FloatField(
        label=gettext_lazy("Top P"),
        required=False,
        min_value=0,
        max_value=1,
        help_text=gettext_lazy("From 0 to 1. Empty: the provider's default."),
        error_messages=_number_messages(gettext_lazy("Top P must be a number from 0 to 1.")),
    )
    top_k = forms.IntegerField(
        label=gettext_lazy("Top K"),
        required=False,
        min_value=1,
        max_value=TOP_K_MAX,
        help_text=gettext_lazy("A whole number, at least 1. Empty: the provider's default."),
        error_messages=_number_messages(
            format_lazy(
                gettext_lazy("Top K must be a whole number from 1 to {maximum}."),
                maximum=f"{TOP_K_MAX:,}",
            )
        ),
    )
    max_tokens = forms.IntegerField(
        label=gettext_lazy("Max tokens"),
        required=False,
        min_value=1,
        max_value=TOKENS_MAX,
        help_text=gettext_lazy("The longest reply, in tokens. Empty: the provider's default."),
        error_messages=_number_messages(
            format_lazy(
                gettext_lazy("Max tokens must be a whole number from 1 to {maximum}."),
                maximum=f"{TOKENS_MAX:,}",
            )
        ),
    )
    reasoning_effort = forms.ChoiceField(
        label=gettext_lazy("Reasoning effort"),
        required=False,
        choices=[
            ("", gettext_lazy("The provider's default")),
            (Conversation.ReasoningEffort.LOW, gettext_lazy("Low")),
            (Conversation.ReasoningEffort.MEDIUM, gettext_lazy("Medium")),
            (Conversation.ReasoningEffort.HIGH, gettext_lazy("High")),
        ],
        error_messages={
            "invalid_choice": gettext_lazy("Reasoning effort must be low, medium or high.")
        },
    )

    def __init__(self, *args, models: list[str], **kwargs) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        self.models = models
        self.fields["model"].choices = [(model, model) for model in models]
        _limit_system_prompt(self.fields["system_prompt"])


class PresetForm(forms.Form):
    """A system prompt saved under a name."""

    name = forms.CharField(
        label=gettext_lazy("Name"),
        max_length=Preset._meta.get_field("name").max_length,
        error_messages={
            "required": gettext_lazy("Give the preset a name."),
            "max_length": gettext_lazy("The name may be at most %(limit_value)d characters long."),
        },
    )
    system_prompt = forms.CharField(
        label=gettext_lazy("System prompt"),
        widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={"required": gettext_lazy("Write the system prompt to save.")},
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, label_suffix="", **kwargs)
        _limit_system_prompt(self.fields["system_prompt"])
