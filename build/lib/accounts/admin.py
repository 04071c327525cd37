from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_lazy, ngettext

from accounts.models import Invitation, ModelAccess, UserLimits


class UserLimitsInline(admin.StackedInline):
    model = UserLimits
    can_delete = False


admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class WebchatUserAdmin(UserAdmin):
    """Django's user admin, with the user's limits, and actions to approve and deactivate."""

    inlines = [UserLimitsInline]
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


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    form = InvitationForm
    list_display = ("__str__", "group", "expires_at", "created_by", "used_by", "used_at")
    readonly_fields = ("link", "created_by", "used_by", "used_at")

    @admin.display(description=gettext_lazy("Link to hand out"))
    def link(self, invitation: Invitation) -> str:
        if invitation.pk is None:
            return gettext("Shown once saved.")
        # Relative, so it names whatever host the admin reached; copy it from the browser.
        url = invitation.get_absolute_url()
        return format_html('<a href="{}">{}</a>', url, url)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
