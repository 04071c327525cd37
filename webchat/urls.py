from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView

from conversations import views
from webchat.health import healthz
from webchat.login_throttle import ThrottledLoginView

urlpatterns = [
    path("", include("conversations.urls")),
    path("setup/", views.first_admin_setup, name="setup"),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/", include("conversations.account_urls")),
    # The admin signs in through the same throttled form.
    path(
        "admin/login/",
        login_not_required(RedirectView.as_view(pattern_name="login", query_string=True)),
    ),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]
