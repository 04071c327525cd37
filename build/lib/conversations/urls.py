from django.urls import path

from accounts import languages, theme
from conversations import export_views, settings_views, sidebar_views, views

app_name = "conversations"

urlpatterns = [
    path("", views.index, name="index"),
    path("theme/", theme.theme_set, name="theme"),
    path("language/", languages.language_set, name="language"),
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
    path("presets/", settings_views.preset_list, name="presets"),
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
        "c/<int:conversation_id>/messages/<int:message_id>/edit/",
        views.message_edit,
        name="message-edit",
    ),
    path(
        "c/<int:conversation_id>/messages/<int:message_id>/show/",
        views.version_show,
        name="version-show",
    ),
    path("attachments/<int:attachment_id>/", views.attachment_image, name="attachment"),
    path(
        "attachments/<int:attachment_id>/thumbnail/",
        views.attachment_thumbnail,
        name="attachment-thumbnail",
    ),
]
