"""With WEBCHAT_STAFF_CAN_READ_CONVERSATIONS off, the admin tells staff nothing of what
users wrote, not even a guess at a time.

An oracle: a secret is stored in every private field of a user's data (titles, system
prompts, message text, thinking, the provider's error words, image names, presets, notes on
replies, the copy a share link keeps). Staff then try, on every registered model's list, every
lookup the admin could accept (made from the models' fields, one and two relations away),
every sort and a search, with a right and a wrong guess at it; the two answers must be the
same. Every admin page, label, confirmation and log entry is then searched for any part of
the secret.
"""

import io
from dataclasses import dataclass
from importlib import import_module

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import CharField, FileField, Model, TextField
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import roles
from accounts.models import Invitation, ModelAccess, UserLimits
from conversations import images, services, shares
from conversations.models import Attachment, Conversation, Feedback, Message, Preset, Share
from review import audit
from review.models import Flag, ModelPrice
from tests import image_files
from tests.factories import ConversationFactory, user_with_role

SECRET = "qzwvkjfhmpzgvbwk"
# Any six letters of it in a page would be a leak; none occurs in a page by chance.
SECRET_PARTS = {SECRET[start : start + 6] for start in range(len(SECRET) - 5)}


def _next_letter(letter: str, step: int) -> str:
    return chr(ord(letter) + step)


# A right and a wrong guess at the secret for each lookup, of the same length, so that an
# answer can only differ by what the guess found.
GUESSES = {
    "": (SECRET, SECRET[:-1] + "x"),
    "startswith": (SECRET[:9], SECRET[:8] + "x"),
    "contains": (SECRET[3:12], SECRET[3:11] + "x"),
    "regex": ("^" + SECRET[:9], "^" + SECRET[:8] + "x"),
    "gt": (
        SECRET[:8] + _next_letter(SECRET[8], -1),
        SECRET[:8] + _next_letter(SECRET[8], +1),
    ),
}
# The admin allows or refuses a lookup by the fields it goes through, whatever it compares
# with: more kinds of comparison one and two relations away would only repeat the question.
LOOKUPS = (
    ("", "startswith", "contains", "regex", "gt"),
    ("startswith", "contains"),
    ("startswith",),
)
SEARCH = GUESSES["startswith"]
# Text the attacker writes in their own data, just below and just above the secret: sorting
# by a private field would place the victim's row between them.
BELOW, ABOVE = GUESSES["gt"]
TEXT_FIELDS = (CharField, TextField, FileField)


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _registered_models() -> list[type[Model]]:
    return [model for model in apps.get_models() if admin.site.is_registered(model)]


def _changelist(model: type[Model]) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def _lookup_paths(model: type[Model], prefix: str = "", depth: int = 0):
    """(path, lookups) for each field of ``model`` and each text field one or two
    relations away, forward or reverse."""
    for field in model._meta.get_fields():
        if not field.is_relation:
            if depth == 0 or isinstance(field, TEXT_FIELDS):
                yield prefix + field.name, LOOKUPS[depth]
        elif field.related_model is not None and depth < 2:
            yield from _lookup_paths(field.related_model, f"{prefix}{field.name}__", depth + 1)


def _query_keys(model: type[Model]):
    for path, lookups in _lookup_paths(model):
        for lookup in lookups:
            yield f"{path}__{lookup}" if lookup else path, GUESSES[lookup]


@dataclass
class Answer:
    status: int
    size: int
    location: str
    rows: list[int] | None
    count: int | None


def _answer(response) -> Answer:
    context = response.context
    change_list = context["cl"] if context is not None and "cl" in context else None
    return Answer(
        status=response.status_code,
        size=len(response.content),
        location=response.get("Location", ""),
        rows=[row.pk for row in change_list.result_list] if change_list else None,
        count=change_list.result_count if change_list else None,
    )


def _conversation_with_everything(owner, text: str) -> Conversation:
    """A conversation of ``owner`` with ``text`` in every private field: a question with an
    image, a reply with thinking and a note on it, a failed reply with the provider's words, and
    a preset."""
    conversation = ConversationFactory(owner=owner, title=text, system_prompt=text)
    picture = images.normalize(
        io.BytesIO(image_files.png()), filename="picture.png", limits=images.ImageLimits()
    )
    _question, reply = services.message_send(
        conversation=conversation, text="placeholder", images=[picture]
    )
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.COMPLETE)
    Feedback.objects.create(message=reply, user=owner, rating=Feedback.Rating.DOWN, note=text)
    services.message_send(conversation=conversation, text="placeholder")
    Message.objects.filter(conversation=conversation).update(
        content=text, reasoning=text, error_detail=text
    )
    Message.objects.filter(status=Message.Status.PENDING, conversation=conversation).update(
        status=Message.Status.ERROR, error="The chat service had a problem.", error_code="server"
    )
    Attachment.objects.filter(message__conversation=conversation).update(original_name=text)
    Preset.objects.create(owner=owner, name=text, system_prompt=text)
    # A link copies the title and the messages.
    conversation.refresh_from_db()
    shares.share_create(conversation=conversation, user=owner, audience=Share.Audience.ANYONE)
    return conversation


@dataclass
class World:
    victim: object
    conversation: Conversation
    staff: object


def _world(settings, role: str) -> World:
    """The victim's conversation holding the secret, the attacker (a reviewer or an admin)
    with data of their own, and a row for every registered admin; then reading is off."""
    settings.WEBCHAT_MODELS = ["test-model"]
    victim = user_with_role(roles.MEMBER, username="victim")
    staff = user_with_role(role, username="staff")
    conversation = _conversation_with_everything(victim, SECRET)
    _conversation_with_everything(staff, BELOW)
    message = conversation.messages.filter(role=Message.Role.USER).first()
    Flag.objects.create(conversation=conversation, message=message, note="Please look")
    Flag.objects.create(conversation=conversation, note="And here", cleared_at=timezone.now())
    # Read while reading was allowed.
    audit.review_accesses_record(viewer=staff, conversations=[conversation])
    UserLimits.objects.create(user=victim, messages_per_minute=5)
    ModelAccess.objects.create(group=victim.groups.get(), model="test-model")
    ModelPrice.objects.create(
        model="test-model", input_price_per_million=1, output_price_per_million=2
    )
    Invitation.objects.create(
        group=victim.groups.get(), expires_at=timezone.now(), created_by=staff
    )
    settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS = False
    return World(victim, conversation, staff)


@pytest.fixture(params=[roles.REVIEWER, roles.ADMIN])
def world(request, db, settings) -> World:
    return _world(settings, request.param)


@pytest.fixture
def admins_world(db, settings) -> World:
    return _world(settings, roles.ADMIN)


def _attackers_text(staff, text: str) -> None:
    """Set every private field of the attacker's own data to ``text``."""
    Conversation.objects.filter(owner=staff).update(title=text, system_prompt=text)
    Message.objects.filter(conversation__owner=staff).update(
        content=text, reasoning=text, error_detail=text
    )
    Attachment.objects.filter(message__conversation__owner=staff).update(original_name=text)
    Preset.objects.filter(owner=staff).update(name=text, system_prompt=text)
    for share in Share.objects.filter(conversation__owner=staff):
        share.title = text
        share.snapshot = [{**copied, "content": text} for copied in share.snapshot]
        share.save()
    Feedback.objects.filter(user=staff).update(note=text)


def _role_seeing(model: type[Model]) -> str:
    """The role with the fewest permissions that sees ``model`` in the admin."""
    view = (model._meta.app_label, f"view_{model._meta.model_name}")
    return roles.REVIEWER if view in roles.REVIEWER_PERMISSIONS else roles.ADMIN


@pytest.mark.parametrize(
    ("role", "model"),
    [(_role_seeing(model), model) for model in _registered_models()],
    ids=lambda value: getattr(value, "__name__", value),
)
def test_no_lookup_sort_or_search_tells_a_right_guess_from_a_wrong_one(settings, db, role, model):
    world = _world(settings, role)
    client = _client(world.staff)
    url = _changelist(model)
    differing = []
    for key, guesses in [*_query_keys(model), ("q", SEARCH)]:
        right, wrong = (_answer(client.get(url, {key: guess})) for guess in guesses)
        if right != wrong:
            differing.append(key)
    # The checkboxes' column, then list_display's.
    for column in range(len(admin.site.get_model_admin(model).list_display) + 1):
        for order in (str(column), f"-{column}"):
            answers = []
            for text in (BELOW, ABOVE):
                _attackers_text(world.staff, text)
                answers.append(_answer(client.get(url, {"o": order})))
            if answers[0] != answers[1]:
                differing.append(f"o={order}")
    assert differing == []


@pytest.mark.parametrize(
    "key",
    [
        "title__startswith",
        "system_prompt__regex",
        "messages__content__contains",
        "current_leaf__reasoning__startswith",
        "messages__error_detail__contains",
        "owner__presets__name__startswith",
        "messages__attachments__original_name__startswith",
        "messages__feedback__note__startswith",
    ],
)
def test_the_oracle_asks_where_the_secret_is(admins_world, key):
    """The database itself tells the guesses apart with the lookups the oracle tries: the
    admin's same answers to both are its refusal, not an empty search."""
    guesses = dict(_query_keys(Conversation))[key]
    right, wrong = (Conversation.objects.filter(**{key: guess}).exists() for guess in guesses)
    assert (right, wrong) == (True, False)


def test_autocomplete_names_nothing_and_tells_no_guess_apart(world):
    client = _client(world.staff)
    url = reverse("admin:autocomplete")
    differing, leaking = [], []
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if not field.is_relation or field.auto_created or field.related_model is None:
                continue
            if not admin.site.is_registered(field.related_model):
                continue
            query = {
                "app_label": model._meta.app_label,
                "model_name": model._meta.model_name,
                "field_name": field.name,
            }
            right, wrong = (client.get(url, {**query, "term": guess}) for guess in SEARCH)
            if (right.status_code, right.content) != (wrong.status_code, wrong.content):
                differing.append(f"{model.__name__}.{field.name}")
            # With no term, every object is listed by its name.
            if _leaks(client.get(url, query).content.decode()):
                leaking.append(f"{model.__name__}.{field.name}")
    assert (differing, leaking) == ([], [])


def _leaks(text: str) -> set[str]:
    return {part for part in SECRET_PARTS if part in text}


def _pages_of(model: type[Model]):
    opts = model._meta
    name = f"admin:{opts.app_label}_{opts.model_name}"
    yield reverse(f"{name}_changelist")
    for pk in model.objects.values_list("pk", flat=True):
        for view in ("change", "history", "delete"):
            yield reverse(f"{name}_{view}", args=[pk])


def test_no_admin_page_label_or_confirmation_shows_the_secret(world):
    client = _client(world.staff)
    leaks = {}
    urls = [
        reverse("admin:index"),
        *(reverse("admin:app_list", args=[label]) for label in ("conversations", "review")),
        reverse("admin:conversations_conversation_usage"),
        reverse("admin:conversations_conversation_usage") + "?format=csv",
        *(url for model in _registered_models() for url in _pages_of(model)),
    ]
    for url in urls:
        page = client.get(url).content.decode()
        if text := _leaks(page):
            leaks[url] = text
        assert "/attachments/" not in page
    # The confirmations of bulk deletion, and an export, which is not offered.
    for model in _registered_models():
        chosen = [str(pk) for pk in model.objects.values_list("pk", flat=True)]
        for action in ("delete_selected", "export_json"):
            response = client.post(
                _changelist(model), {"action": action, "_selected_action": chosen}, follow=True
            )
            if text := _leaks(response.content.decode()):
                leaks[f"{model.__name__} {action}"] = text
    assert leaks == {}


def test_deleting_conversations_logs_no_title(admins_world, settings):
    world = admins_world
    client = _client(world.staff)
    changelist = _changelist(Conversation)
    # One deleted while reading was on, one from its page and the rest at once while off.
    settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS = True
    earlier = _conversation_with_everything(world.victim, SECRET + "a")
    delete = {"action": "delete_selected", "_selected_action": [earlier.pk], "post": "yes"}
    assert client.post(changelist, delete).status_code == 302
    settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS = False
    page = reverse("admin:conversations_conversation_delete", args=[world.conversation.pk])
    assert client.post(page, {"post": "yes"}).status_code == 302
    rest = list(Conversation.objects.values_list("pk", flat=True))
    delete = {"action": "delete_selected", "_selected_action": rest, "post": "yes"}
    assert client.post(changelist, delete).status_code == 302
    assert not Conversation.objects.exists()
    logged = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Conversation))
    assert logged.count() == len(rest) + 2
    for entry in logged:
        assert entry.object_repr == f"Conversation {entry.object_id}"
    # The "recent actions" of the admin's home page.
    assert not _leaks(client.get(reverse("admin:index")).content.decode())


# --- The oracle itself ------------------------------------------------------------------------


def test_the_oracle_tells_guesses_apart_when_reading_is_on(world, settings):
    """The same probes see the difference where the admin is meant to show titles."""
    settings.WEBCHAT_STAFF_CAN_READ_CONVERSATIONS = True
    client = _client(world.staff)
    url = _changelist(Conversation)
    right, wrong = (_answer(client.get(url, {"q": guess})) for guess in SEARCH)
    assert (right.count, wrong.count) == (1, 0)
    answers = []
    for text in (BELOW, ABOVE):
        _attackers_text(world.staff, text)
        answers.append(_answer(client.get(url, {"o": "1"})).rows)  # after the checkboxes
    assert answers[0] == list(reversed(answers[1]))


# --- The log of earlier deletions ----------------------------------------------------------------


def test_the_migration_names_logged_conversations_by_number(admins_world):
    """Deletions logged before: the log named conversations by their titles."""
    conversation, victim = admins_world.conversation, admins_world.victim

    def logged(obj, name: str) -> LogEntry:
        return LogEntry.objects.create(
            user=admins_world.staff,
            content_type=ContentType.objects.get_for_model(obj),
            object_id=str(obj.pk),
            object_repr=name,
            action_flag=DELETION,
        )

    entries = [logged(conversation, SECRET), logged(victim, "victim")]
    migration = import_module("review.migrations.0003_log_entries_without_users_text")
    migration.log_entries_name_by_number(apps, None)
    for entry in entries:
        entry.refresh_from_db()
    assert [entry.object_repr for entry in entries] == [f"Conversation {conversation.pk}", "victim"]
