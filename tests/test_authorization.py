"""Who may read or change what, for every URL pattern and the websocket route.

The routes are walked from the URLconf, so a new one fails ``test_every_route_is_declared``
until its expectations are added to ROUTES. The admin namespace is left out: its
authorization is Django's own, and the admin is reviewed in its own issue. Static files
have no URL pattern (WhiteNoise serves them from the middleware).
"""

import io
import re
from dataclasses import dataclass

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.test import AsyncClient
from django.urls import URLPattern, URLResolver, get_resolver

from accounts import roles
from api.models import ApiKey
from conversations import images, services, shares
from conversations.models import Message, Preset, Share
from tests import image_files
from tests.factories import ConversationFactory, user_with_role
from tests.generation_helpers import communicator_for, finished

# Transactional: the generations and the socket run outside the test's transaction.
transactional_db = pytest.mark.django_db(transaction=True)

# Who may use a route.
PUBLIC = "public"  # anyone, signed in or not
MEMBERS = "members"  # any signed-in user; it concerns no one else's object
OWNER = "owner"  # the owner of the object in the URL; to anyone else it does not exist
OWNER_AND_REVIEWERS = "owner and reviewers"  # ... and staff who may view attachments
# Only a personal API key (api/): a session, anyone's, gets a 401, never a sign-in page.
KEY = "key"


@dataclass(frozen=True)
class Route:
    methods: tuple[str, ...]  # GET reads, POST changes
    access: str


ROUTES = {
    "conversations:index": Route(("GET",), MEMBERS),
    # A cookie on the browser, not the account; it sets nothing on the server.
    "conversations:theme": Route(("POST",), PUBLIC),
    "conversations:language": Route(("POST",), PUBLIC),
    # A cookie on the browser naming the account; it changes nothing on the server.
    "conversations:privacy-notice-dismiss": Route(("POST",), MEMBERS),
    "conversations:create": Route(("POST",), MEMBERS),
    "conversations:detail": Route(("GET",), OWNER),
    "conversations:message-create": Route(("POST",), OWNER),
    "conversations:older-messages": Route(("GET",), OWNER),
    "conversations:reply-stop": Route(("POST",), OWNER),
    "conversations:export-markdown": Route(("GET",), OWNER),
    "conversations:export-json": Route(("GET",), OWNER),
    "conversations:reply-regenerate": Route(("POST",), OWNER),
    "conversations:reply-continue": Route(("POST",), OWNER),
    "conversations:message-edit": Route(("GET", "POST"), OWNER),
    "conversations:version-show": Route(("POST",), OWNER),
    "conversations:reply-feedback": Route(("POST",), OWNER),
    "conversations:menu": Route(("GET",), OWNER),
    "conversations:rename": Route(("GET", "POST"), OWNER),
    "conversations:pin": Route(("POST",), OWNER),
    "conversations:unpin": Route(("POST",), OWNER),
    "conversations:delete": Route(("GET", "POST"), OWNER),
    "conversations:search": Route(("GET",), MEMBERS),
    "conversations:api-conversations": Route(("POST",), MEMBERS),
    "conversations:settings": Route(("GET", "POST"), OWNER),
    "conversations:settings-preset": Route(("POST",), OWNER),
    "conversations:model": Route(("POST",), OWNER),
    "conversations:preset-apply": Route(("POST",), OWNER),
    # The user's own choices for their next new chat, kept in their session.
    "conversations:new-chat-model": Route(("POST",), MEMBERS),
    "conversations:new-chat-preset": Route(("POST",), MEMBERS),
    "conversations:presets": Route(("GET", "POST"), MEMBERS),
    "conversations:preset-edit": Route(("GET", "POST"), OWNER),
    "conversations:preset-delete": Route(("POST",), OWNER),
    "conversations:shares": Route(("GET", "POST"), OWNER),
    "conversations:share-revoke": Route(("POST",), OWNER),
    # A link for anyone (the objects' share): its token is the access.
    "conversations:share": Route(("GET",), PUBLIC),
    "conversations:share-image": Route(("GET",), PUBLIC),
    "conversations:share-thumbnail": Route(("GET",), PUBLIC),
    "conversations:attachment": Route(("GET",), OWNER_AND_REVIEWERS),
    "conversations:attachment-thumbnail": Route(("GET",), OWNER_AND_REVIEWERS),
    "setup": Route(("GET", "POST"), PUBLIC),
    "login": Route(("GET", "POST"), PUBLIC),
    "logout": Route(("POST",), MEMBERS),
    "usage": Route(("GET",), MEMBERS),
    "invitation-accept": Route(("GET", "POST"), PUBLIC),
    "signup": Route(("GET", "POST"), PUBLIC),
    "password_change": Route(("GET", "POST"), MEMBERS),
    "password_change_done": Route(("GET",), MEMBERS),
    "password_reset": Route(("GET", "POST"), PUBLIC),
    "password_reset_done": Route(("GET",), PUBLIC),
    "password_reset_confirm": Route(("GET", "POST"), PUBLIC),
    "password_reset_complete": Route(("GET",), PUBLIC),
    # Single sign-on's start and return (a 404 here: no provider is configured).
    "openid_connect_login": Route(("GET", "POST"), PUBLIC),
    "openid_connect_callback": Route(("GET",), PUBLIC),
    "admin/login/": Route(("GET", "POST"), PUBLIC),  # a redirect to the throttled sign-in
    # A redirect to the throttled password change.
    "admin/password_change/": Route(("GET", "POST"), MEMBERS),
    "api:models": Route(("GET",), KEY),
    "api:chat-completions": Route(("POST",), KEY),
    "api:keys": Route(("GET", "POST"), MEMBERS),
    "api:key-revoke": Route(("POST",), OWNER),
    "healthz": Route(("GET",), PUBLIC),
    # Whoever is signed in: only the client's address or a token matters (test_metrics.py).
    "metrics": Route(("GET",), PUBLIC),
    "favicon": Route(("GET",), PUBLIC),
}
# URL kwargs, filled from the owner's objects (or a value for public routes' tokens).
KWARGS = {
    "conversation_id": lambda objects: objects.conversation.pk,
    "message_id": lambda objects: objects.reply.pk,
    "user_message_id": lambda objects: objects.user_message.pk,
    "finished_reply_id": lambda objects: objects.finished_reply.pk,
    "attachment_id": lambda objects: objects.attachment.pk,
    "preset_id": lambda objects: objects.preset.pk,
    "key_id": lambda objects: objects.api_key.pk,
    "share_id": lambda objects: objects.share.pk,
    "share_token": lambda objects: objects.share.token,
    "token": lambda objects: "not-a-valid-token",
    "uidb64": lambda objects: "MQ",
    "provider_id": lambda objects: "sso",
}
PERSONAS = ("anonymous", "member", "reviewer", "admin", "owner")  # the owner last: it changes
READERS = {
    MEMBERS: {"member", "reviewer", "admin", "owner"},
    OWNER: {"owner"},
    OWNER_AND_REVIEWERS: {"reviewer", "admin", "owner"},
}
CHANGERS = {MEMBERS: READERS[MEMBERS], OWNER: {"owner"}}


def _walk(resolver: URLResolver, prefix: str = "", namespace: str = ""):
    for pattern in resolver.url_patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue
            inner = ":".join(part for part in (namespace, pattern.namespace) if part)
            yield from _walk(pattern, route, inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace else pattern.name
            yield name or route, route


URL_ROUTES = dict(_walk(get_resolver()))


@dataclass
class Objects:
    personas: dict
    conversation: object
    user_message: Message
    reply: Message
    finished_reply: Message
    attachment: object
    preset: Preset
    share: Share
    api_key: ApiKey


def _objects() -> Objects:
    owner = user_with_role(roles.MEMBER, username="owner")
    personas = {
        "anonymous": None,
        "owner": owner,
        "member": user_with_role(roles.MEMBER, username="member"),
        "reviewer": user_with_role(roles.REVIEWER, username="reviewer"),
        "admin": user_with_role(roles.ADMIN, username="admin", is_superuser=True),
    }
    conversation = ConversationFactory(owner=owner, model=settings.WEBCHAT_MODELS[0])
    picture = images.normalize(
        io.BytesIO(image_files.png()), filename="picture.png", limits=images.ImageLimits()
    )
    user_message, reply = services.message_send(
        conversation=conversation, text="Look", images=[picture]
    )
    # Interrupted with text: both Retry and Continue may be asked for.
    Message.objects.filter(pk=reply.pk).update(status=Message.Status.INTERRUPTED, content="Partial")
    # Another version of the reply, not shown but finished: only such a reply can be rated.
    finished_reply = Message.objects.create(
        conversation=conversation, parent=user_message, role=Message.Role.ASSISTANT, content="Done"
    )
    preset = Preset.objects.create(owner=owner, name="Saved", system_prompt="Be brief.")
    attachment = user_message.attachments.get()
    share = shares.share_create(
        conversation=conversation, user=owner, audience=Share.Audience.ANYONE
    )
    api_key, _key = ApiKey.issue(owner=owner, name="Script")
    return Objects(
        personas,
        conversation,
        user_message,
        reply,
        finished_reply,
        attachment,
        preset,
        share,
        api_key,
    )


def _posted(objects: Objects) -> dict:
    """A body each POST route takes: a message, what the settings and presets need, and a
    conversation's new title."""
    return {
        "apply_preset": str(objects.preset.pk),
        "text": "Hello",
        "title": "Greetings",
        "model": settings.WEBCHAT_MODELS[0],
        "name": "Brief",
        "preset_name": "Brief",
        "system_prompt": "Be brief.",
        "rating": "down",
    }


def _url(route: str, objects: Objects) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name == "message_id" and route.endswith("/edit/"):
            name = "user_message_id"  # only one's own messages can be edited
        if name == "message_id" and route.endswith("/feedback/"):
            name = "finished_reply_id"  # only finished replies can be rated
        assert name in KWARGS, f"No value for the URL kwarg {name!r}: add it to KWARGS."
        return str(KWARGS[name](objects))

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", value, route)


def _signs_in(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")


def test_every_route_is_declared():
    assert set(URL_ROUTES) - set(ROUTES) == set(), "Declare the new routes in ROUTES."
    assert set(ROUTES) - set(URL_ROUTES) == set(), "ROUTES names routes that are gone."


@transactional_db
@pytest.mark.parametrize("name", sorted(URL_ROUTES))
async def test_only_the_right_people_may_read_or_change(name, fake_upstream):
    assert name in ROUTES, f"{name} is not declared in ROUTES."
    route = ROUTES[name]
    objects = await sync_to_async(_objects)()
    url = _url(URL_ROUTES[name], objects)
    outcomes = {}
    for persona in PERSONAS:
        client = AsyncClient()
        if (user := objects.personas[persona]) is not None:
            await sync_to_async(client.force_login)(user)
        for method in ("GET", "POST"):
            if method == "GET":
                response = await client.get(url)
            else:
                response = await client.post(url, _posted(objects))
            outcomes[persona, method] = (response.status_code, _signs_in(response))
    await _generations_finished()

    for (persona, method), (status, signs_in) in outcomes.items():
        where = f"{persona} {method} {url}: {status}"
        if route.access == KEY:
            assert not signs_in, where
            assert status == (401 if method in route.methods else 405), where
        elif route.access == PUBLIC:
            assert not signs_in, where
            assert status < 500, where
            assert status != 405 or method not in route.methods, where
        elif persona == "anonymous":
            assert signs_in, where
        elif method not in route.methods:
            assert status == 405, where
        elif persona in (READERS if method == "GET" else CHANGERS)[route.access]:
            assert 200 <= status < 400, where
        else:
            assert status == 404, where


async def _generations_finished() -> None:
    async for reply in Message.objects.filter(role=Message.Role.ASSISTANT):
        await finished(reply)


@transactional_db
@pytest.mark.parametrize(
    "name",
    sorted(
        # Key-authenticated routes take no cookie, so a forged cross-site request has no key.
        name
        for name, route in ROUTES.items()
        if route.methods == ("POST",) and route.access != KEY
    ),
)
async def test_every_state_changing_route_checks_csrf(name, fake_upstream):
    objects = await sync_to_async(_objects)()
    client = AsyncClient(enforce_csrf_checks=True)
    await sync_to_async(client.force_login)(objects.personas["owner"])
    response = await client.post(_url(URL_ROUTES[name], objects), {"text": "Hello"})
    assert response.status_code == 403
    assert await Message.objects.acount() == 3


@transactional_db
@pytest.mark.parametrize(("persona", "connects"), [(p, p == "owner") for p in PERSONAS])
async def test_only_the_owner_may_open_the_conversation_socket(persona, connects):
    objects = await sync_to_async(_objects)()
    communicator = communicator_for(
        objects.conversation.pk, objects.personas[persona] or AnonymousUser()
    )
    connected, _ = await communicator.connect()
    assert connected is connects
    await communicator.disconnect()
