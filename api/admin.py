from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy, ngettext

from api.models import ApiKey


def _revoke(queryset) -> int:
    return queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


class KeyStateFilter(admin.SimpleListFilter):
    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            ("usable", gettext_lazy("Usable")),
            ("expired", gettext_lazy("Expired")),
            ("revoked", gettext_lazy("Revoked")),
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        not_expired = Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        if self.value() == "usable":
            return queryset.filter(not_expired, revoked_at__isnull=True)
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now, revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Every key, never the key itself (only its digest is stored)."""

    list_display = (
        "name",
        "owner",
        "prefix",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
        "conversation_count",
    )
    list_filter = (KeyStateFilter, "last_used_at", "created_at")
    search_fields = ("name", "prefix", "owner__username")
    list_select_related = ("owner",)
    readonly_fields = ("owner", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    fields = ("owner", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False  # a key is made by its owner, who alone sees it once

    def get_queryset(self, request):
        counted = super().get_queryset(request).annotate(conversation_count=Count("conversations"))
        # A grouped query drops the model's ordering, which pages need (autocomplete too).
        return counted.order_by(*ApiKey._meta.ordering)

    @admin.display(description=gettext_lazy("conversations"), ordering="conversation_count")
    def conversation_count(self, api_key: ApiKey) -> int:
        return api_key.conversation_count

    @admin.action(description=gettext_lazy("Revoke the selected keys"), permissions=["change"])
    def revoke(self, request, queryset):
        count = _revoke(queryset)
        self.message_user(
            request,
            ngettext("%(count)s key revoked.", "%(count)s keys revoked.", count) % {"count": count},
            messages.SUCCESS,
        )


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ("name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields  # changed on the key's own page
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


# Each user's page lists their keys too. Added here rather than in accounts/admin.py, so
# the accounts app does not depend on this one (it is registered after accounts).
_user_admin = admin.site.get_model_admin(get_user_model())
_user_admin.inlines = [*_user_admin.inlines, ApiKeyInline]
