from datetime import timedelta

# Imported first, so that what single sign-on configures from the environment instead can
# be taken out of the admin below.
import allauth.account.admin
import allauth.socialaccount.admin  # noqa: F401
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount, SocialApp, SocialToken
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_lazy, ngettext

from accounts.models import Invitation, LoginLockout, ModelAccess, UserLimits


class UserLimitsInline(admin.StackedInline):
    model = UserLimits
    can_delete = False


class IdentityProviderLinkInline(admin.TabularInline):
    """The user's single sign-on identities; deleting one unlinks it (its next sign-in
    then counts as a first one)."""

    model = SocialAccount
    extra = 0
    fields = ("provider", "uid", "last_login", "date_joined")
    readonly_fields = fields
    verbose_name = gettext_lazy("identity provider link")
    verbose_name_plural = gettext_lazy("identity provider links")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


admin.site.unregister(get_user_model())
# The provider comes from the environment (webchat/settings.py), tokens are not stored,
# email addresses are the users' own field, and each user's page lists their links.
admin.site.unregister([SocialApp, SocialToken, EmailAddress, SocialAccount])


@admin.register(get_user_model())
class WebchatUserAdmin(UserAdmin):
    """Django's user admin, with the user's limits, and actions to approve and deactivate."""

    inlines = [UserLimitsInline, IdentityProviderLinkInline]
    list_filter = ("is_active", "is_staff", "is_superuser", "groups")
    actions = ["approve", "deactivate"]

    @admin.action(
        description=gettext_lazy("Approve (activate) the selected users"), permissions=["change"]
    )
    def approve(self, request, queryset):
        count = queryset.filter(is_active=False).update(is_active=True)
        self.message_user(
            request,
            ngettext("%(count)s user approved.", "%(count)s users approved.", count)
            % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(
        description=gettext_lazy("Deactivate the selected users (ends their sessions)"),
        permissions=["change"],
    )
    def deactivate(self, request, queryset):
        # Saved one by one, so each save signals that their sessions and sockets must end.
        users = list(queryset.filter(is_active=True).exclude(pk=request.user.pk))
        for user in users:
            user.is_active = False
            user.save(update_fields=["is_active"])
        self.message_user(
            request,
            ngettext("%(count)s user deactivated.", "%(count)s users deactivated.", len(users))
            % {"count": len(users)},
            messages.SUCCESS,
        )


class ModelAccessForm(forms.ModelForm):
    model = forms.ChoiceField(choices=())

    class Meta:
        model = ModelAccess
        fields = ("group", "model")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [(name, name) for name in settings.WEBCHAT_MODELS]


@admin.register(ModelAccess)
class ModelAccessAdmin(admin.ModelAdmin):
    form = ModelAccessForm
    list_display = ("group", "model")
    list_filter = ("group",)


class InvitationForm(forms.ModelForm):
    class Meta:
        model = Invitation
        fields = ("group", "expires_at")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_at"].initial = lambda: (
            timezone.now() + timedelta(days=settings.WEBCHAT_INVITATION_DAYS)
        )


def _invitation_link(request: HttpRequest, invitation: Invitation) -> str:
    """The invitation's link, whole (scheme and host as the admin reached the site), in a
    field to select and a button to copy it (static/webchat/copy-link.js)."""
    url = request.build_absolute_uri(invitation.get_absolute_url())
    field_id = f"invitation-link-{invitation.pk}"
    return format_html(
        '<input type="text" id="{}" class="vTextField invitation-link" value="{}" readonly '
        'aria-label="{}"> <button type="button" class="button" data-copy-link="{}" '
        'data-copied="{}" data-selected="{}" hidden>{}</button>',
        field_id,
        url,
        gettext("Invitation link"),
        field_id,
        gettext("Copied"),
        gettext("Selected: press Ctrl+C to copy"),
        gettext("Copy"),
    )


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    form = InvitationForm
    list_display = ("__str__", "group", "expires_at", "created_by", "used_by", "used_at")
    readonly_fields = ("created_by", "used_by", "used_at")

    class Media:
        js = ("webchat/copy-link.js",)

    def get_list_display(self, request: HttpRequest):
        @admin.display(description=gettext_lazy("Link to hand out"))
        def link(invitation: Invitation) -> str:
            if invitation.used_at is not None:
                return gettext("Used")
            if not invitation.is_usable:
                return gettext("Expired")
            return _invitation_link(request, invitation)

        return (*self.list_display[:2], link, *self.list_display[2:])

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and obj.pk is not None:
            context["invitation_link"] = _invitation_link(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(LoginLockout)
class LoginLockoutAdmin(admin.ModelAdmin):
    """The lockouts in force (accounts/login_throttle.py). Deleting one clears it: its
    username or address may try again at once, with a full set of attempts."""

    list_display = ("scope", "username", "address", "locked_until")
    list_filter = ("scope",)
    search_fields = ("username", "address")

    def get_queryset(self, request):
        return super().get_queryset(request).filter(locked_until__gt=timezone.now())

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
