import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission

from accounts import roles
from conversations.models import Conversation, Message


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct horse battery")


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation

    owner = factory.SubFactory(UserFactory)
    title = factory.Sequence(lambda n: f"Conversation {n}")
    model = "test-model"


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message
        skip_postgeneration_save = True

    conversation = factory.SubFactory(ConversationFactory)
    role = Message.Role.USER
    content = factory.Sequence(lambda n: f"Message {n}")
    status = Message.Status.COMPLETE
    # By default a message follows the conversation's shown branch and becomes its end.
    parent = factory.LazyAttribute(
        lambda message: Message.objects.filter(
            pk=Conversation.objects.filter(pk=message.conversation.pk).values("current_leaf")[:1]
        ).first()
    )

    @factory.post_generation
    def becomes_current_leaf(message: Message, create: bool, extracted: bool | None, **kwargs):
        if create and extracted is not False:
            Conversation.objects.filter(pk=message.conversation_id).update(current_leaf=message)
            message.conversation.current_leaf = message


def user_with_role(role: str, **fields) -> AbstractBaseUser:
    """A user in the role's group (accounts.roles); reviewers and admins are staff."""
    # A transactional test's flush empties the groups the data migration made.
    roles.role_groups_create(Group, Permission)
    user = UserFactory(is_staff=role in roles.STAFF_ROLES, **fields)
    user.groups.add(Group.objects.get(name=role))
    return user
