from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView

from webchat.health import healthz

urlpatterns = [
    path("", include("conversations.urls")),
    path("", include("accounts.urls")),
    # The admin signs in through the same throttled form.
    path(
        "admin/login/",
        login_not_required(RedirectView.as_view(pattern_name="login", query_string=True)),
    ),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]
