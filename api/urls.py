from django.urls import path

from api import views

app_name = "api"
urlpatterns = [
    path("api/v1/models", views.models_list, name="models"),
    path("api/v1/chat/completions", views.chat_completions, name="chat-completions"),
    path("api/keys/", views.keys, name="keys"),
    path("api/keys/<int:key_id>/revoke/", views.key_revoke, name="key-revoke"),
]
