"""The three roles, as Django groups with their permissions.

Member: chats (every active account may chat; the group is what admins grant models to).
Reviewer: a staff account that reads every conversation in the admin and changes nothing
but flags (it may add and clear them) and reads the audit of who read what.
Admin: a staff account that manages everything in the admin.
"""

MEMBER = "Member"
REVIEWER = "Reviewer"
ADMIN = "Admin"

REVIEWER_PERMISSIONS = [
    ("conversations", "view_conversation"),
    ("conversations", "view_message"),
    ("conversations", "view_attachment"),
    ("conversations", "view_flag"),
    ("conversations", "add_flag"),
    ("conversations", "change_flag"),  # clearing a flag; its note stays as written
    ("conversations", "view_reviewaccess"),
]
STAFF_ROLES = (REVIEWER, ADMIN)  # they work in the admin
ADMIN_APPS = ["conversations", "auth", "sessions"]


def role_groups_create(group_model, permission_model) -> None:
    """Create the role groups with their permissions, or complete them; the models are
    passed in so the data migration can use its historical ones."""
    group_model.objects.get_or_create(name=MEMBER)
    reviewer, _ = group_model.objects.get_or_create(name=REVIEWER)
    for app_label, codename in REVIEWER_PERMISSIONS:
        # Filtered, not fetched: a migration older than a model runs without its permissions.
        reviewer.permissions.add(
            *permission_model.objects.filter(content_type__app_label=app_label, codename=codename)
        )
    admin, _ = group_model.objects.get_or_create(name=ADMIN)
    admin.permissions.add(*permission_model.objects.filter(content_type__app_label__in=ADMIN_APPS))
