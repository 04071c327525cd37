from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.utils.translation import gettext_lazy

from accounts import setup


class FirstAdminForm(UserCreationForm):
    """The first account of a fresh install: an administrator, made by whoever holds the
    setup token."""

    setup_token = forms.CharField(
        label=gettext_lazy("Setup token"),
        error_messages={
            "required": gettext_lazy(
                "Enter the setup token: the server printed it in its log at start-up."
            )
        },
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    email = forms.EmailField(
        required=False, help_text=gettext_lazy("Optional; used for password resets.")
    )

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")

    field_order = ["setup_token", "username", "email", "password1", "password2"]

    def clean_setup_token(self) -> str:
        token = self.cleaned_data["setup_token"]
        if not setup.setup_token_matches(token):
            raise forms.ValidationError(
                gettext_lazy(
                    "This is not the setup token. Copy it from the server's log, or run "
                    "python manage.py setup_token on the server."
                ),
                code="wrong_setup_token",
            )
        return token

    def save(self, commit: bool = True):
        user = super().save(commit=False)
        user.is_staff = True
        user.is_superuser = True
        if commit:
            user.save()
        return user


class AccountForm(UserCreationForm):
    """A new account, by invitation or by signing up."""

    email = forms.EmailField(
        required=False, help_text=gettext_lazy("Optional; used for password resets.")
    )

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


class SignInForm(AuthenticationForm):
    """Django's sign-in form; with WEBCHAT_PASSWORD_LOGIN off, a password signs in only a
    superuser (the break-glass way in while single sign-on fails). Others get the same
    error as for a wrong password, so the form tells no one whose password was right."""

    def confirm_login_allowed(self, user) -> None:
        super().confirm_login_allowed(user)
        if not settings.WEBCHAT_PASSWORD_LOGIN and not user.is_superuser:
            raise self.get_invalid_login_error()
