from allauth.socialaccount.providers.openid_connect import views as oidc_views
from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views
from accounts.login_throttle import ThrottledLoginView, ThrottledPasswordChangeView

# Not namespaced: Django's password views and mails reverse these names as they are.
urlpatterns = [
    path("setup/", views.first_admin_setup, name="setup"),
    path("accounts/login/", ThrottledLoginView.as_view(), name="login"),
    path("accounts/logout/", views.SignOutView.as_view(), name="logout"),
    # Single sign-on (accounts/sso.py): allauth's views, under the names it reverses.
    path(
        "accounts/oidc/<str:provider_id>/login/",
        oidc_views.login,
        name="openid_connect_login",
    ),
    path(
        "accounts/oidc/<str:provider_id>/login/callback/",
        oidc_views.callback,
        name="openid_connect_callback",
    ),
    path("accounts/usage/", views.usage, name="usage"),
    path("accounts/invitation/<str:token>/", views.invitation_accept, name="invitation-accept"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/password/", ThrottledPasswordChangeView.as_view(), name="password_change"),
    path(
        "accounts/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("accounts/password/reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "accounts/password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]
