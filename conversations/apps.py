from django.apps import AppConfig
from django.utils.translation import gettext_lazy


class ConversationsConfig(AppConfig):
    name = "conversations"
    verbose_name = gettext_lazy("Chat")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from conversations import signals  # noqa: F401 (connects the receivers)
