from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView

from webchat.favicon import favicon
from webchat.health import healthz
from webchat.metrics import prometheus_metrics

urlpatterns = [
    path("", include("conversations.urls")),
    path("", include("accounts.urls")),
    path("", include("api.urls")),
    # The admin signs in through the same throttled form.
    path(
        "admin/login/",
        login_not_required(RedirectView.as_view(pattern_name="login", query_string=True)),
    ),
    # ... and changes a password through the same throttled check of the current one.
    path(
        "admin/password_change/",
        RedirectView.as_view(pattern_name="password_change", query_string=True),
    ),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", prometheus_metrics, name="metrics"),
    path("favicon.ico", favicon, name="favicon"),
]

handler500 = "webchat.errors.server_error"
