"""An API conversation comes in at the top of its owner's open sidebars, as one started in
another tab does."""

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import AsyncClient
from django.urls import reverse

from api.models import ApiKey
from conversations.models import Conversation
from tests.generation_helpers import communicator_for

pytestmark = pytest.mark.django_db(transaction=True)

SIDEBAR_FRAME = '<div hx-swap-oob="afterbegin:#conversation-list">'


async def _asked_through_the_api(owner, text: str = "From a script"):
    _api_key, key = await sync_to_async(ApiKey.issue)(owner=owner, name="Script")
    return await AsyncClient().post(
        reverse("api:chat-completions"),
        {"model": settings.WEBCHAT_MODELS[0], "messages": [{"role": "user", "content": text}]},
        content_type="application/json",
        headers={"authorization": f"Bearer {key}"},
    )


async def _tab(conversation, user):
    tab = communicator_for(conversation.pk, user)
    connected, _code = await tab.connect()
    assert connected
    return tab


async def test_an_api_conversation_comes_to_the_top_of_its_owners_sidebars_only(
    owner, outsider, conversation, fake_upstream
):
    other = await sync_to_async(Conversation.objects.create)(owner=outsider)
    tab, outsider_tab = await _tab(conversation, owner), await _tab(other, outsider)

    response = await _asked_through_the_api(owner)
    entry = await tab.receive_from(timeout=10)
    await tab.disconnect()

    assert response.status_code == 200
    made = await Conversation.objects.exclude(pk=conversation.pk).aget(owner=owner)
    assert made.source == Conversation.Source.API
    assert entry.startswith(SIDEBAR_FRAME)
    assert f'id="conversation-{made.pk}-item" data-source="api"' in entry
    assert '<span class="badge-api"' in entry
    assert await outsider_tab.receive_nothing(timeout=0.5)
    await outsider_tab.disconnect()


async def test_an_exchange_the_api_does_not_store_shows_in_no_sidebar(
    owner, conversation, fake_upstream, settings
):
    settings.WEBCHAT_API_STORE = False
    tab = await _tab(conversation, owner)

    response = await _asked_through_the_api(owner)

    assert response.status_code == 200
    assert await tab.receive_nothing(timeout=0.5)
    await tab.disconnect()
