"""The three roles, as Django groups with their permissions.

Member: chats (every active account may chat; the group is what admins grant models to).
Reviewer: a staff account that reads every conversation in the admin and changes nothing
but flags (it may add and clear them), reads the audit of who read what, and sees the share
links and who opened them.
Admin: a staff account that manages everything in the admin (API keys included).
"""

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.utils.translation import gettext_noop

# The groups' names, stored as they are; pages translate them where they show them.
MEMBER = gettext_noop("Member")
REVIEWER = gettext_noop("Reviewer")
ADMIN = gettext_noop("Admin")

REVIEWER_PERMISSIONS = [
    ("conversations", "view_conversation"),
    ("conversations", "view_message"),
    ("conversations", "view_attachment"),
    ("conversations", "view_share"),
    ("review", "view_flag"),
    ("review", "add_flag"),
    ("review", "change_flag"),  # clearing a flag; its note stays as written
    ("review", "view_reviewaccess"),
    ("review", "view_shareevent"),
]
STAFF_ROLES = (REVIEWER, ADMIN)  # they work in the admin
ADMIN_APPS = ["conversations", "accounts", "review", "api", "auth", "sessions", "socialaccount"]


def role_groups_migrate(apps, schema_editor) -> None:
    """The data migrations' step: create (or complete) the groups with their permissions."""
    # Permissions are normally created after all migrations; the groups need them now. They
    # are made for the installed models (create_permissions reads the app registry), as
    # migrations of other apps, such as review's, may not have run yet.
    for app_config in global_apps.get_app_configs():
        create_permissions(app_config, verbosity=0)
    role_groups_create(apps.get_model("auth", "Group"), apps.get_model("auth", "Permission"))


def role_groups_create(group_model, permission_model) -> None:
    """Create the role groups with their permissions, or complete them; the models are
    passed in so the data migration can use its historical ones."""
    group_model.objects.get_or_create(name=MEMBER)
    reviewer, _ = group_model.objects.get_or_create(name=REVIEWER)
    for app_label, codename in REVIEWER_PERMISSIONS:
        reviewer.permissions.add(
            permission_model.objects.get(content_type__app_label=app_label, codename=codename)
        )
    admin, _ = group_model.objects.get_or_create(name=ADMIN)
    admin.permissions.add(*permission_model.objects.filter(content_type__app_label__in=ADMIN_APPS))
