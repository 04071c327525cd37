"""Accounts made by invitation or by signing up."""

from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from accounts import roles
from accounts.models import Invitation

UNUSABLE = gettext_lazy("This invitation link has expired or was already used.")


class InvitationUnusable(Exception):
    """The invitation does not exist, has expired or was used."""


def invitation_usable(token: str) -> Invitation:
    invitation = Invitation.objects.select_related("group").filter(token=token).first()
    if invitation is None or not invitation.is_usable:
        raise InvitationUnusable(UNUSABLE)
    return invitation


@transaction.atomic
def invitation_accept(token: str, form: UserCreationForm) -> AbstractBaseUser:
    """Create the account of a valid ``form`` in the invitation's role; the link is used up."""
    # Locked, so two people opening the same link at once cannot both get an account.
    invitation = Invitation.objects.select_for_update().filter(token=token).first()
    if invitation is None or not invitation.is_usable:
        raise InvitationUnusable(UNUSABLE)
    user = form.save(commit=False)
    user.is_staff = invitation.group.name in roles.STAFF_ROLES
    user.save()
    user.groups.add(invitation.group)
    invitation.used_by = user
    invitation.used_at = timezone.now()
    invitation.save(update_fields=["used_by", "used_at"])
    return user


@transaction.atomic
def signup(form: UserCreationForm) -> AbstractBaseUser:
    """Create a member's account that stays inactive until an admin approves it."""
    user = form.save(commit=False)
    user.is_active = False
    user.save()
    user.groups.add(Group.objects.get(name=roles.MEMBER))
    return user
