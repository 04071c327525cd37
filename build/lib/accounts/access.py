"""Which models a user may use.

Admins grant models to groups with ModelAccess rows. While there are none at all, every
configured model is open to everyone (a fresh install works without setup); once there are
any, a user may use the models granted to their groups, and superusers every model.
"""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from accounts.models import ModelAccess


def _restricted() -> bool:
    return ModelAccess.objects.exists()


def allowed_models(user: AbstractBaseUser) -> list[str]:
    """The configured models ``user`` may choose, in the configured order."""
    configured = settings.WEBCHAT_MODELS
    if user.is_superuser or not _restricted():
        return list(configured)
    granted = set(ModelAccess.objects.filter(group__user=user).values_list("model", flat=True))
    return [model for model in configured if model in granted]


def model_allowed(user: AbstractBaseUser, model: str) -> bool:
    """Whether ``user`` may send to ``model``; while unrestricted, also one no longer
    configured (an old conversation's)."""
    if user.is_superuser or not _restricted():
        return True
    return ModelAccess.objects.filter(group__user=user, model=model).exists()
