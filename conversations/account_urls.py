from django.contrib.auth import views as auth_views
from django.urls import path

from conversations import account_views

# Not namespaced: Django's password views and mails reverse these names as they are.
urlpatterns = [
    path("usage/", account_views.usage, name="usage"),
    path("invitation/<str:token>/", account_views.invitation_accept, name="invitation-accept"),
    path("signup/", account_views.signup, name="signup"),
    path("password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("password/reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]
