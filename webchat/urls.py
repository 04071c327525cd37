from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from conversations import views
from webchat.health import healthz

urlpatterns = [
    path("", include("conversations.urls")),
    path("setup/", views.first_admin_setup, name="setup"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]
