from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.utils.translation import gettext_lazy


class FirstAdminForm(UserCreationForm):
    """The first account of a fresh install: an administrator."""

    email = forms.EmailField(
        required=False, help_text=gettext_lazy("Optional; used for password resets.")
    )

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")

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
