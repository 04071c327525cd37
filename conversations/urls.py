from django.urls import path

from conversations import views

app_name = "conversations"

urlpatterns = [
    path("", views.index, name="index"),
    path("c/new/", views.conversation_create, name="create"),
    path("c/<int:conversation_id>/", views.conversation_detail, name="detail"),
    path("c/<int:conversation_id>/messages/", views.message_create, name="message-create"),
    path(
        "c/<int:conversation_id>/messages/<int:message_id>/retry/",
        views.reply_retry,
        name="reply-retry",
    ),
    path(
        "c/<int:conversation_id>/messages/<int:message_id>/continue/",
        views.reply_continue,
        name="reply-continue",
    ),
    path("attachments/<int:attachment_id>/", views.attachment_image, name="attachment"),
    path(
        "attachments/<int:attachment_id>/thumbnail/",
        views.attachment_thumbnail,
        name="attachment-thumbnail",
    ),
]
