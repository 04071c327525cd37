"""Reading an OpenAI chat-completions request as the browser's messages and settings.

What the browser refuses, the API refuses too, with the same words: the text of each
message (``services.message_text_clean``), the number of images, the conversation settings
(``ConversationSettingsForm``), and each image, decoded only after every other check, as
an upload is (``attachments.images_normalize``). Images come as ``data:`` URLs; the server
fetches nothing from elsewhere, as the browser's uploads never do.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.translation import gettext

from api.errors import ApiError
from conversations import attachments, images, services
from conversations.forms import ConversationSettingsForm
from conversations.images import NormalizedImage
from conversations.models import Message
from conversations.services import Turn

SETTINGS = ("temperature", "top_p", "top_k", "max_tokens", "reasoning_effort")
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?:;[\w=.+-]+)*;base64,", re.ASCII)
_SYSTEM_ROLES = ("system", "developer")


@dataclass
class _Message:
    role: str
    text: str
    # Each image as a file, in the order given; decoded later.
    images: list[SimpleUploadedFile] = field(default_factory=list)


@dataclass
class ChatCompletionRequest:
    model: str
    stream: bool
    include_usage: bool
    system_prompt: str
    messages: list[_Message]
    # The conversation settings of the request, as ``Conversation`` fields.
    settings_values: dict

    @property
    def image_count(self) -> int:
        return sum(len(message.images) for message in self.messages)

    async def turns(self) -> list[Turn]:
        """The messages with their images normalized; a refused image refuses the request."""
        uploads = [image for message in self.messages for image in message.images]
        normalized = await attachments.images_normalize(uploads) if uploads else []
        if rejections := [str(each) for each in normalized if isinstance(each, Exception)]:
            raise ApiError.invalid(" ".join(rejections), param="messages")
        turns, at = [], 0
        for message in self.messages:
            taken: list[NormalizedImage] = normalized[at : at + len(message.images)]
            at += len(message.images)
            turns.append(Turn(role=message.role, text=message.text, images=taken))
        return turns


def request_parse(body: bytes) -> ChatCompletionRequest:
    """The request in ``body``, checked as far as it can be without decoding images."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError.invalid(gettext("The request body is not valid JSON.")) from None
    if not isinstance(data, dict):
        raise ApiError.invalid(gettext("The request body must be a JSON object."))
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError.invalid(gettext("Name a model."), param="model")
    for unsupported in ("tools", "functions", "tool_choice", "response_format", "audio"):
        if data.get(unsupported) is not None:
            raise ApiError.invalid(
                gettext("“%(param)s” is not supported.") % {"param": unsupported},
                param=unsupported,
            )
    if data.get("n", 1) != 1:
        raise ApiError.invalid(gettext("Only one choice (n = 1) is supported."), param="n")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError.invalid(gettext("“stream” must be true or false."), param="stream")
    options = data.get("stream_options") or {}
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    system_parts, messages = _messages(data.get("messages"))
    system_prompt = "\n\n".join(system_parts)
    settings_values = _settings_values(data, model=model, system_prompt=system_prompt)
    return ChatCompletionRequest(
        model=model,
        stream=stream,
        include_usage=include_usage,
        system_prompt=system_prompt,
        messages=messages,
        settings_values=settings_values,
    )


def _messages(given: object) -> tuple[list[str], list[_Message]]:
    if not isinstance(given, list) or not given:
        raise ApiError.invalid(gettext("“messages” must be a non-empty list."), param="messages")
    system_parts: list[str] = []
    messages: list[_Message] = []
    for index, message in enumerate(given):
        param = f"messages[{index}]"
        if not isinstance(message, dict):
            raise ApiError.invalid(gettext("Each message must be an object."), param=param)
        role = message.get("role")
        if role in _SYSTEM_ROLES:
            if messages:
                raise ApiError.invalid(
                    gettext("System messages must come before the conversation's messages."),
                    param=param,
                )
            text, _images = _content(message.get("content"), param=param, images_allowed=False)
            system_parts.append(text)
            continue
        if role not in (Message.Role.USER, Message.Role.ASSISTANT):
            raise ApiError.invalid(
                gettext("A message's role must be system, developer, user or assistant."),
                param=f"{param}.role",
            )
        text, uploads = _content(
            message.get("content"), param=param, images_allowed=role == Message.Role.USER
        )
        try:
            if role == Message.Role.USER:
                text = services.message_text_clean(text, with_images=bool(uploads))
                services.image_count_check(len(uploads))
            else:
                text = services.message_text_clean(text, with_images=True)
        except services.MessageRefused as refusal:
            raise ApiError.invalid(str(refusal), param=param) from None
        messages.append(_Message(role=role, text=text, images=uploads))
    if not messages or messages[-1].role != Message.Role.USER:
        raise ApiError.invalid(gettext("The last message must be the user's."), param="messages")
    return system_parts, messages


def _content(
    content: object, *, param: str, images_allowed: bool
) -> tuple[str, list[SimpleUploadedFile]]:
    """A message's text (its text parts joined) and images."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise ApiError.invalid(
            gettext("A message's content must be a string or a list of parts."),
            param=f"{param}.content",
        )
    texts: list[str] = []
    uploads: list[SimpleUploadedFile] = []
    for index, part in enumerate(content):
        where = f"{param}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url" and images_allowed:
            uploads.append(_image(part.get("image_url"), param=where, number=len(uploads) + 1))
        elif kind == "image_url":
            raise ApiError.invalid(gettext("Only the user's messages may have images."), where)
        else:
            raise ApiError.invalid(
                gettext("A content part must be text or an image_url."), param=where
            )
    return "\n".join(texts), uploads


def _image(given: object, *, param: str, number: int) -> SimpleUploadedFile:
    url = given.get("url") if isinstance(given, dict) else given
    if not isinstance(url, str):
        raise ApiError.invalid(gettext("An image_url part needs a url."), param=param)
    match = _DATA_URL.match(url)
    if match is None:
        raise ApiError.invalid(
            gettext(
                "Images must be sent as data: URLs (data:image/png;base64,…); "
                "this server does not fetch images from other addresses."
            ),
            param=param,
        )
    encoded = url[match.end() :]
    # Refused by its length before it is decoded: base64 takes 4 characters per 3 bytes.
    size = len(encoded) * 3 // 4
    limit = settings.WEBCHAT_MAX_IMAGE_BYTES
    if size > limit:
        raise ApiError.invalid(
            gettext("Image %(number)s is %(size)s; the limit is %(limit)s per image.")
            % {
                "number": number,
                "size": images.file_size(size),
                "limit": images.file_size(limit),
            },
            param=param,
        )
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError.invalid(
            gettext("Image %(number)s is not valid base64.") % {"number": number}, param=param
        ) from None
    return SimpleUploadedFile(f"image-{number}", data)


def _settings_values(data: dict, *, model: str, system_prompt: str) -> dict:
    """The request's options checked as the conversation settings form checks them."""
    given = {
        "model": model,
        "system_prompt": system_prompt,
        "temperature": data.get("temperature"),
        "top_p": data.get("top_p"),
        "top_k": data.get("top_k"),
        "max_tokens": data.get("max_completion_tokens", data.get("max_tokens")),
        "reasoning_effort": data.get("reasoning_effort"),
    }
    form_data = {name: "" if value is None else str(value) for name, value in given.items()}
    form = ConversationSettingsForm(form_data, models=[model])
    if not form.is_valid():
        name, errors = next(iter(form.errors.items()))
        raise ApiError.invalid(errors[0], param=name)
    return {name: form.cleaned_data[name] for name in SETTINGS if name != "reasoning_effort"} | {
        "reasoning_effort": form.cleaned_data["reasoning_effort"] or ""
    }
