from django.urls import path

from conversations import views

app_name = "conversations"

urlpatterns = [
    path("", views.index, name="index"),
    path("c/new/", views.conversation_create, name="create"),
    path("c/<int:conversation_id>/", views.conversation_detail, name="detail"),
    path("c/<int:conversation_id>/messages/", views.message_create, name="message-create"),
]
