"""The admin site under Webchat's name: Django's own, its titles changed."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.utils.translation import gettext_lazy


class WebchatAdminSite(admin.AdminSite):
    site_header = gettext_lazy("Webchat administration")
    site_title = gettext_lazy("Webchat administration")
    index_title = gettext_lazy("Administration")


class WebchatAdminConfig(AdminConfig):
    default_site = "webchat.admin_site.WebchatAdminSite"
