"""Images attached to messages: sending, refusing, storing, serving and forwarding them."""

import asyncio
import base64
import io
import json
import threading
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from PIL import Image

from accounts import roles
from accounts.models import ModelAccess, UserLimits
from conversations import images, services
from conversations.models import Attachment, Conversation, Message
from tests import image_files
from tests.factories import ConversationFactory, MessageFactory, user_with_role
from tests.generation_helpers import finished, latest_reply

HTMX = {"HX-Request": "true"}


def _send_url(conversation: Conversation) -> str:
    return reverse("conversations:message-create", args=[conversation.pk])


def _stored_files(settings) -> list[Path]:
    return [path for path in Path(settings.MEDIA_ROOT).rglob("*") if path.is_file()]


def _normalized(data: bytes, name: str = "picture.png") -> images.NormalizedImage:
    return images.normalize(io.BytesIO(data), filename=name, limits=images.ImageLimits())


def _decoded_data_url(url: str) -> tuple[str, bytes]:
    head, encoded = url.split(",", 1)
    assert head.startswith("data:")
    assert head.endswith(";base64")
    return head.removeprefix("data:").removesuffix(";base64"), base64.b64decode(encoded)


def _stored_bytes(field_file) -> bytes:
    with field_file.storage.open(field_file.name, "rb") as file:
        return file.read()


async def _finished_reply(conversation: Conversation) -> Message:
    return await finished(await latest_reply(conversation))


@pytest.fixture
def attachment(conversation) -> Attachment:
    user_message, _reply = services.message_send(
        conversation=conversation, text="Look", images=[_normalized(image_files.png())]
    )
    return user_message.attachments.get()


@pytest.fixture
def reviewer_client(db) -> Client:
    client = Client()
    client.force_login(user_with_role(roles.REVIEWER, username="reviewer"))
    return client


# --- Bad input: a clear error, and nothing saved or sent ---------------------------------


def _strip() -> bytes:
    return image_files.encoded(Image.new("L", (1, 60_000)))


# Each case: the files it posts (made when the test runs), and the error it must show.
BAD_INPUT = {
    "a text file renamed .png": (
        lambda: [image_files.upload("notes.png", b"These are my notes.\n" * 10)],
        "“notes.png” is not a PNG, JPEG, WEBP or GIF image.",
    ),
    "a truncated JPEG": (
        lambda: [image_files.upload("photo.jpg", image_files.truncated_jpeg(), "image/jpeg")],
        "“photo.jpg” is damaged or incomplete",
    ),
    "a 1 x 60,000 pixel image": (
        lambda: [image_files.upload("strip.png", _strip())],
        "“strip.png” is 1 \N{MULTIPLICATION SIGN} 60,000 pixels, too long and thin",
    ),
    "a PNG decompression bomb": (
        lambda: [image_files.upload("bomb.png", image_files.png_decompression_bomb())],
        "“bomb.png” is 8,000 \N{MULTIPLICATION SIGN} 8,000 pixels; "
        "images may have at most 40 megapixels.",
    ),
    "an empty file": (lambda: [image_files.upload("empty.png", b"")], "“empty.png” is empty."),
    "nine images": (
        # Eight more beside the valid image every case sends.
        lambda: [image_files.upload(f"picture{n}.png", image_files.png()) for n in range(8)],
        "This message has 9 images; the limit is 8 per message.",
    ),
    "a 25 MB file": (
        lambda: [image_files.upload("huge.png", image_files.png_of_25_megabytes())],
        "“huge.png” is 25.8 MB; the limit is 20 MB per image.",
    ),
    "an SVG": (
        lambda: [image_files.upload("drawing.svg", image_files.SVG, "image/svg+xml")],
        "“drawing.svg” is not a PNG, JPEG, WEBP or GIF image.",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT.keys())
def test_bad_input_is_refused_inline_and_nothing_is_saved_or_sent(
    case, owner_client, conversation, fake_upstream, settings
):
    make_uploads, error = BAD_INPUT[case]
    valid = image_files.upload("fine.png", image_files.png())
    response = owner_client.post(
        _send_url(conversation),
        {"text": "What is this?", "images": [valid, *make_uploads()]},
        headers=HTMX,
    )
    assert response.status_code == 422
    assert response["HX-Retarget"] == "#composer-error"
    assert error in response.content.decode()
    assert not Message.objects.exists()
    assert not Attachment.objects.exists()
    assert _stored_files(settings) == []
    assert fake_upstream.requests == []


def test_a_refusal_names_every_rejected_file(owner_client, conversation):
    uploads = [
        image_files.upload("notes.png", b"not a picture"),
        image_files.upload("fine.png", image_files.png()),
        image_files.upload("empty.gif", b""),
    ]
    response = owner_client.post(
        _send_url(conversation), {"text": "", "images": uploads}, headers=HTMX
    )
    page = response.content.decode()
    assert "“notes.png”" in page
    assert "“empty.gif”" in page
    assert "fine.png" not in page


def test_a_refusal_without_javascript_keeps_the_text(owner_client, conversation):
    upload = image_files.upload("drawing.svg", image_files.SVG, "image/svg+xml")
    response = owner_client.post(_send_url(conversation), {"text": "Keep me", "images": [upload]})
    assert response.status_code == 422
    page = response.content.decode()
    assert "“drawing.svg” is not a PNG" in page
    assert ">Keep me</textarea>" in page


def test_a_message_refused_while_a_reply_is_written_leaves_no_files(conversation, settings):
    services.message_send(conversation=conversation, text="first")
    with pytest.raises(services.MessageRefused, match="still being written"):
        services.message_send(
            conversation=conversation, text="second", images=[_normalized(image_files.png())]
        )
    assert not Attachment.objects.exists()
    assert _stored_files(settings) == []


# --- Refused for its sender: before any image is decoded ---------------------------------


@pytest.fixture
def decoded(monkeypatch) -> list[str]:
    """The names of the images decoded (normalized) from now on."""
    names: list[str] = []
    normalize = images.normalize

    def recording(file, *, filename: str, limits: images.ImageLimits):
        names.append(filename)
        return normalize(file, filename=filename, limits=limits)

    monkeypatch.setattr(images, "normalize", recording)
    return names


def _reply_being_written(owner, conversation, settings) -> None:
    MessageFactory(conversation=conversation, role="assistant", status="streaming")


def _as_many_replies_as_allowed(owner, conversation, settings) -> None:
    settings.WEBCHAT_MAX_ACTIVE_REPLIES_PER_USER = 1
    elsewhere = ConversationFactory(owner=owner)
    MessageFactory(conversation=elsewhere, role="assistant", status="streaming")


def _rate_limit_reached(owner, conversation, settings) -> None:
    settings.WEBCHAT_MESSAGES_PER_MINUTE = 1
    MessageFactory(conversation=conversation, role="assistant")


def _daily_quota_used(owner, conversation, settings) -> None:
    UserLimits.objects.create(user=owner, daily_token_quota=10)
    MessageFactory(conversation=conversation, role="assistant", prompt_tokens=10)


def _model_taken_away(owner, conversation, settings) -> None:
    ModelAccess.objects.create(group=Group.objects.create(name="Others"), model="other-model")


REFUSED_FOR_THE_SENDER = {
    "a reply being written": (_reply_being_written, "still being written"),
    "as many replies as allowed": (_as_many_replies_as_allowed, "the most allowed at once"),
    "the rate limit reached": (_rate_limit_reached, "messages in the last minute"),
    "the daily quota used": (_daily_quota_used, "your daily quota of 10 tokens"),
    "the model taken away": (_model_taken_away, "no longer have access to the model"),
}


@pytest.mark.parametrize("case", REFUSED_FOR_THE_SENDER.keys())
def test_a_message_refused_for_its_sender_decodes_none_of_its_images(
    case, owner, owner_client, conversation, settings, decoded, fake_upstream
):
    arrange, error = REFUSED_FOR_THE_SENDER[case]
    arrange(owner, conversation, settings)
    uploads = [image_files.upload(f"picture{n}.png", image_files.png()) for n in range(8)]
    response = owner_client.post(
        _send_url(conversation), {"text": "Look", "images": uploads}, headers=HTMX
    )
    assert response.status_code == 422
    assert error in response.content.decode()
    assert decoded == []
    assert not Attachment.objects.exists()


@pytest.mark.parametrize(
    "case", ["as many replies as allowed", "the rate limit reached", "the daily quota used"]
)
def test_a_new_conversation_refused_for_its_sender_decodes_none_of_its_images(
    case, owner, owner_client, conversation, settings, decoded, fake_upstream
):
    arrange, error = REFUSED_FOR_THE_SENDER[case]
    arrange(owner, conversation, settings)
    upload = image_files.upload("picture.png", image_files.png())
    response = owner_client.post(
        reverse("conversations:create"), {"text": "Look", "images": [upload]}, headers=HTMX
    )
    assert response.status_code == 422
    assert error in response.content.decode()
    assert decoded == []


def test_a_new_conversation_without_a_model_allowed_decodes_none_of_its_images(
    owner_client, settings, decoded, fake_upstream
):
    _model_taken_away(None, None, settings)
    upload = image_files.upload("picture.png", image_files.png())
    response = owner_client.post(
        reverse("conversations:create"),
        {"text": "Look", "model": "other-model", "images": [upload]},
        headers=HTMX,
    )
    assert response.status_code == 422
    assert "No model is available to you" in response.content.decode()
    assert decoded == []


# --- Sending and showing ----------------------------------------------------------------


def test_a_message_with_images_stores_them_normalized_with_thumbnails(
    owner_client, conversation, settings
):
    uploads = [
        image_files.upload("sideways.jpg", image_files.phone_photo((800, 600)), "image/jpeg"),
        image_files.upload("diagram.png", image_files.png((3000, 1500))),
    ]
    response = owner_client.post(
        _send_url(conversation), {"text": "Compare these", "images": uploads}, headers=HTMX
    )
    assert response.status_code == 200
    user_message = Message.objects.get(role="user")
    assert user_message.content == "Compare these"
    photo, diagram = user_message.attachments.all()
    assert (photo.original_name, photo.content_type) == ("sideways.jpg", "image/jpeg")
    assert (photo.width, photo.height) == (600, 800)
    assert (diagram.width, diagram.height) == (2048, 1024)
    for attachment in (photo, diagram):
        stored = _stored_bytes(attachment.image)
        assert len(stored) == attachment.size
        assert image_files.opened(stored).size == (attachment.width, attachment.height)
        assert image_files.opened(_stored_bytes(attachment.thumbnail)).format == "WEBP"
    assert len(_stored_files(settings)) == 4

    page = response.content.decode()
    assert reverse("conversations:attachment-thumbnail", args=[photo.pk]) in page
    assert f'href="{reverse("conversations:attachment", args=[diagram.pk])}"' in page


def test_images_alone_are_a_message(owner_client, conversation):
    upload = image_files.upload("cat.png", image_files.png())
    response = owner_client.post(
        _send_url(conversation), {"text": "", "images": [upload]}, headers=HTMX
    )
    assert response.status_code == 200
    user_message = Message.objects.get(role="user")
    assert user_message.content == ""
    assert user_message.attachments.count() == 1


def test_text_alone_is_still_required_without_images(owner_client, conversation):
    response = owner_client.post(_send_url(conversation), {"text": "  "}, headers=HTMX)
    assert response.status_code == 422
    assert "Type a message before sending." in response.content.decode()


def test_a_conversation_can_start_with_an_image_and_is_titled_as_one(
    owner_client, owner, fake_upstream
):
    upload = image_files.upload("whiteboard.png", image_files.png())
    response = owner_client.post(
        reverse("conversations:create"), {"text": "", "images": [upload]}, headers=HTMX
    )
    conversation = Conversation.objects.get(owner=owner)
    assert response["HX-Redirect"] == conversation.get_absolute_url()
    assert conversation.title == "Image"
    assert Attachment.objects.get().message.conversation == conversation


def test_the_conversation_page_shows_each_image_as_a_thumbnail_linking_to_it(
    owner_client, conversation, attachment
):
    page = owner_client.get(conversation.get_absolute_url()).content.decode()
    full = reverse("conversations:attachment", args=[attachment.pk])
    thumbnail = reverse("conversations:attachment-thumbnail", args=[attachment.pk])
    assert f'<a class="message-image" href="{full}"' in page
    assert f'<img src="{thumbnail}" alt="picture.png" width="120" height="80"' in page
    assert "/media/" not in page


# --- Serving: only to the owner and to staff --------------------------------------------


def test_the_owner_gets_the_image_and_its_thumbnail_with_safe_headers(owner_client, attachment):
    response = owner_client.get(reverse("conversations:attachment", args=[attachment.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == 'inline; filename="picture.jpg"'
    assert "private" in response["Cache-Control"]
    assert response.content == _stored_bytes(attachment.image)

    response = owner_client.get(reverse("conversations:attachment-thumbnail", args=[attachment.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content == _stored_bytes(attachment.thumbnail)


def test_another_member_gets_404_for_both(outsider_client, attachment):
    for name in ("conversations:attachment", "conversations:attachment-thumbnail"):
        assert outsider_client.get(reverse(name, args=[attachment.pk])).status_code == 404


def test_anonymous_visitors_are_asked_to_sign_in(client, attachment):
    url = reverse("conversations:attachment", args=[attachment.pk])
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_a_reviewer_may_see_any_image(reviewer_client, attachment):
    url = reverse("conversations:attachment", args=[attachment.pk])
    assert reviewer_client.get(url).status_code == 200


def test_a_missing_image_answers_404(owner_client, attachment):
    assert owner_client.get(reverse("conversations:attachment", args=[999_999])).status_code == 404
    attachment.image.storage.delete(attachment.image.name)
    url = reverse("conversations:attachment", args=[attachment.pk])
    assert owner_client.get(url).status_code == 404


# --- Storage ----------------------------------------------------------------------------


def test_deleting_a_conversation_deletes_its_image_files(
    conversation, attachment, settings, django_capture_on_commit_callbacks
):
    assert len(_stored_files(settings)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        conversation.delete()
    assert _stored_files(settings) == []


def test_any_storage_backend_can_hold_the_images(owner_client, conversation, settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    upload = image_files.upload("cat.png", image_files.png())
    owner_client.post(_send_url(conversation), {"text": "Hi", "images": [upload]}, headers=HTMX)
    attachment = Attachment.objects.get()
    assert _stored_files(settings) == []
    response = owner_client.get(reverse("conversations:attachment", args=[attachment.pk]))
    assert image_files.opened(response.content).size == (120, 80)


# --- Forwarding to the upstream ---------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_phone_photo_reaches_the_upstream_upright_downscaled_and_without_metadata(
    async_owner_client, conversation, fake_upstream
):
    upload = image_files.upload("IMG_0042.jpg", image_files.phone_photo(), "image/jpeg")
    response = await async_owner_client.post(
        _send_url(conversation),
        {"text": "what is in this picture?", "images": [upload]},
        headers=HTMX,
    )
    assert response.status_code == 200
    reply = await _finished_reply(conversation)
    assert reply.status == Message.Status.COMPLETE

    [message] = fake_upstream.requests[-1].body["messages"]
    text, image = message["content"]
    assert text == {"type": "text", "text": "what is in this picture?"}
    assert image["type"] == "image_url"
    content_type, data = _decoded_data_url(image["image_url"]["url"])
    assert content_type == "image/jpeg"
    sent = image_files.opened(data)
    assert sent.size == (1536, 2048)
    assert not sent.getexif()
    assert b"PhoneMaker" not in data
    assert b"GPS" not in data
    assert sent.getpixel((768, 200))[0] > 180  # The red half is at the top: upright.
    attachment = await Attachment.objects.aget()
    assert data == await sync_to_async(_stored_bytes)(attachment.image)

    page = (await async_owner_client.get(conversation.get_absolute_url())).content.decode()
    assert reverse("conversations:attachment-thumbnail", args=[attachment.pk]) in page


@pytest.mark.django_db(transaction=True)
async def test_earlier_turns_keep_their_images(async_owner_client, conversation, fake_upstream):
    uploads = [image_files.upload(f"page{n}.png", image_files.png()) for n in (1, 2)]
    await async_owner_client.post(
        _send_url(conversation), {"text": "", "images": uploads}, headers=HTMX
    )
    await _finished_reply(conversation)
    await async_owner_client.post(_send_url(conversation), {"text": "And now?"}, headers=HTMX)
    await _finished_reply(conversation)

    first, answer, last = fake_upstream.requests[-1].body["messages"]
    assert [part["type"] for part in first["content"]] == ["image_url", "image_url"]
    assert answer["role"] == "assistant"
    assert last == {"role": "user", "content": "And now?"}


@pytest.mark.django_db(transaction=True)
async def test_the_oldest_images_are_left_out_when_the_request_would_exceed_the_cap(
    async_owner_client, conversation, fake_upstream, settings
):
    photo = image_files.noise_png((160, 160))  # about 75 kB once stored as a JPEG
    for turn in range(3):
        upload = image_files.upload(f"photo{turn}.png", photo)
        await async_owner_client.post(
            _send_url(conversation), {"text": f"turn {turn}", "images": [upload]}, headers=HTMX
        )
        await _finished_reply(conversation)
    image_bytes = (await Attachment.objects.afirst()).size
    settings.WEBCHAT_MAX_REQUEST_BYTES = int(2.5 * image_bytes * 4 / 3) + 4_000
    await async_owner_client.post(_send_url(conversation), {"text": "Which?"}, headers=HTMX)
    await _finished_reply(conversation)

    body = fake_upstream.requests[-1].body
    assert (
        len(json.dumps(body, separators=(",", ":")).encode()) <= settings.WEBCHAT_MAX_REQUEST_BYTES
    )
    user_turns = [message["content"] for message in body["messages"] if message["role"] == "user"]
    oldest, middle, newest, question = user_turns
    assert oldest[0] == {"type": "text", "text": "turn 0"}
    assert oldest[1]["type"] == "text"
    assert "“photo0.png”, was left out" in oldest[1]["text"]
    assert middle[1]["type"] == newest[1]["type"] == "image_url"
    assert question == "Which?"


# --- Off the event loop -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_uploads_are_parsed_and_normalized_off_the_event_loop(
    async_owner_client, conversation, fake_upstream, monkeypatch
):
    from django.http.request import HttpRequest

    threads: dict[str, int] = {}
    parse, normalize = HttpRequest.parse_file_upload, images.normalize

    def parse_recording_thread(self, *args, **kwargs):
        threads["parse"] = threading.get_ident()
        return parse(self, *args, **kwargs)

    def normalize_recording_thread(*args, **kwargs):
        threads["normalize"] = threading.get_ident()
        return normalize(*args, **kwargs)

    monkeypatch.setattr(HttpRequest, "parse_file_upload", parse_recording_thread)
    monkeypatch.setattr(images, "normalize", normalize_recording_thread)
    upload = image_files.upload("cat.png", image_files.png())
    response = await async_owner_client.post(
        _send_url(conversation), {"text": "Hi", "images": [upload]}, headers=HTMX
    )
    assert response.status_code == 200
    await _finished_reply(conversation)
    loop_thread = threading.get_ident()
    assert threads.keys() == {"parse", "normalize"}
    assert loop_thread not in threads.values()


@pytest.mark.django_db(transaction=True)
async def test_images_posted_at_once_are_decoded_one_at_a_time_on_one_thread(
    async_owner_client, owner, conversation, fake_upstream, monkeypatch
):
    threads: set[str] = set()
    normalize = images.normalize

    def recording_thread(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return normalize(*args, **kwargs)

    monkeypatch.setattr(images, "normalize", recording_thread)
    other = await sync_to_async(ConversationFactory)(owner=owner)

    async def send(conversation: Conversation):
        uploads = [image_files.upload(f"cat{n}.png", image_files.png()) for n in range(3)]
        return await async_owner_client.post(
            _send_url(conversation), {"text": "Hi", "images": uploads}, headers=HTMX
        )

    responses = await asyncio.gather(send(conversation), send(other))
    assert [response.status_code for response in responses] == [200, 200]
    for each in (conversation, other):
        await _finished_reply(each)
    assert len(threads) == 1
    assert threads.pop().startswith("image-decoder")
