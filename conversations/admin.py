from django.contrib import admin

from conversations.models import Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = (
        "role",
        "status",
        "error_code",
        "content",
        "model",
        "finish_reason",
        "total_tokens",
        "created_at",
    )
    readonly_fields = fields
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "model", "created_at", "updated_at")
    list_filter = ("model",)
    search_fields = ("title",)
    list_select_related = ("owner",)
    inlines = [MessageInline]
