from django.urls import path

from accounts import languages, privacy_notice, theme
from conversations import (
    export_views,
    feedback_views,
    settings_views,
    share_views,
    sidebar_views,
    views,
)

app_name = "conversations"

urlpatterns = [
    path("", views.index, name="index"),
    path("theme/", theme.theme_set, name="theme"),
    path("language/", languages.language_set, name="language"),
    path(
        "privacy-notice/dismiss/",
        privacy_notice.privacy_notice_dismiss,
        name="privacy-notice-dismiss",
    ),
    path("c/new/", views.conversation_create, name="create"),
    path("c/<int:conversation_id>/", views.conversation_detail, name="detail"),
    path("c/<int:conversation_id>/messages/", views.message_create, name="message-create"),
    path("c/<int:conversation_id>/older/", views.older_messages, name="older-messages"),
    path("c/<int:conversation_id>/menu/", sidebar_views.conversation_menu, name="menu"),
    path("c/<int:conversation_id>/rename/", sidebar_views.conversation_rename, name="rename"),
    path("c/<int:conversation_id>/pin/", sidebar_views.conversation_pin, name="pin"),
    path("c/<int:conversation_id>/unpin/", sidebar_views.conversation_unpin, name="unpin"),
    path("c/<int:conversation_id>/delete/", sidebar_views.conversation_delete, name="delete"),
    path("search/", sidebar_views.conversation_search, name="search"),
    path("api-conversations/", sidebar_views.api_conversations_show, name="api-conversations"),
    path("c/<int:conversation_id>/stop/", views.reply_stop, name="reply-stop"),
    path(
        "c/<int:conversation_id>/settings/",
        settings_views.conversation_settings_edit,
        name="settings",
    ),
    path(
        "c/<int:conversation_id>/settings/preset/",
        settings_views.settings_preset_create,
        name="settings-preset",
    ),
    path(
        "c/<int:conversation_id>/model/",
        settings_views.conversation_model_set,
        name="model",
    ),
    path("c/<int:conversation_id>/preset/", views.preset_apply, name="preset-apply"),
    path("model/", settings_views.new_chat_model_set, name="new-chat-model"),
    path("preset/", views.new_chat_preset_set, name="new-chat-preset"),
    path("presets/", settings_views.preset_list, name="presets"),
    path("presets/<int:preset_id>/edit/", settings_views.preset_edit, name="preset-edit"),
    path("presets/<int:preset_id>/delete/", settings_views.preset_delete, name="preset-delete"),
    path(
        "c/<int:conversation_id>/export.md",
        export_views.conversation_export_markdown,
        name="export-markdown",
    ),
    path(
        "c/<int:conversation_id>/export.json",
        export_views.conversation_export_json,
        name="export-json",
    ),
    path(
        "c/<int:conversation_id>/messages/<int:message_id>/regenerate/",
        views.reply_regenerate,
        name="reply-regenerate",
    ),
    path(
        "c/<int:conversation_id>/messages/<int:message_id>/continue/",
        views.reply_continue,
        name="reply-continue",
    ),
    path(
        "c/<int:conversation_id>/messages/<int:message_id>/feedback/",
        feedback_views.reply_feedback,
        name="reply-feedback",
    ),
    path(
        "c/<int:conversation_id>/messages/<int:message_id>/edit/",
        views.message_edit,
        name="message-edit",
    ),
    path(
        "c/<int:conversation_id>/messages/<int:message_id>/show/",
        views.version_show,
        name="version-show",
    ),
    path("c/<int:conversation_id>/shares/", share_views.share_list, name="shares"),
    path(
        "c/<int:conversation_id>/shares/<int:share_id>/revoke/",
        share_views.share_revoke,
        name="share-revoke",
    ),
    path("s/<str:share_token>/", share_views.share_page, name="share"),
    path(
        "s/<str:share_token>/images/<int:attachment_id>/",
        share_views.share_image,
        name="share-image",
    ),
    path(
        "s/<str:share_token>/images/<int:attachment_id>/thumbnail/",
        share_views.share_thumbnail,
        name="share-thumbnail",
    ),
    path("attachments/<int:attachment_id>/", views.attachment_image, name="attachment"),
    path(
        "attachments/<int:attachment_id>/thumbnail/",
        views.attachment_thumbnail,
        name="attachment-thumbnail",
    ),
]
