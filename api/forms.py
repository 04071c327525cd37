from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy

from api.models import ApiKey

# How long a new key lasts; "" never ends.
EXPIRY_CHOICES = [
    ("", gettext_lazy("Never")),
    ("7", gettext_lazy("7 days")),
    ("30", gettext_lazy("30 days")),
    ("90", gettext_lazy("90 days")),
    ("365", gettext_lazy("1 year")),
]


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("Name"),
        max_length=ApiKey._meta.get_field("name").max_length,
        help_text=gettext_lazy("What it is for, such as the script or machine that uses it."),
        error_messages={
            "required": gettext_lazy("Give the key a name."),
            "max_length": gettext_lazy("The name may be at most %(limit_value)d characters long."),
        },
    )
    expires_in = forms.ChoiceField(
        label=gettext_lazy("Expires"), choices=EXPIRY_CHOICES, required=False
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, label_suffix="", **kwargs)

    def expires_at(self):
        days = self.cleaned_data["expires_in"]
        return timezone.now() + timedelta(days=int(days)) if days else None
