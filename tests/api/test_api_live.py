"""The API through OpenAI's own Python client, against a live server and the fake upstream."""

import asyncio
import base64

import httpx
import openai
import pytest

from tests import image_files
from tests.api.live import ApiServer
from tests.live_server import wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory, fake_upstream_server):
    server = ApiServer(tmp_path_factory.mktemp("api"), fake_upstream_server.base_url)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def upstream(fake_upstream_server):
    fake_upstream_server.reset()
    return fake_upstream_server


def _client(server: ApiServer, key: str) -> openai.OpenAI:
    # No retries: every refusal must reach the test as it was answered.
    return openai.OpenAI(base_url=server.api_base, api_key=key, max_retries=0)


def _ask(client: openai.OpenAI, text: str = "Hello", **options):
    return client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": text}], **options
    )


def _conversations(server: ApiServer, owner: str) -> list[tuple]:
    return server.query(
        "SELECT c.id, c.source, c.title FROM conversations_conversation c "
        "JOIN auth_user u ON u.id = c.owner_id WHERE u.username = ? ORDER BY c.id",
        owner,
    )


def test_models_lists_only_the_models_the_user_may_use(server, upstream):
    models = _client(server, server.keys["alice"]).models.list()
    assert [model.id for model in models.data] == ["fake-model"]


def test_a_completion_is_answered_stored_as_an_api_conversation_and_counted(server, upstream):
    before = len(_conversations(server, "alice"))
    completion = _ask(
        _client(server, server.keys["alice"]),
        "Say hi",
        temperature=0.5,
        max_tokens=50,
    )

    assert completion.choices[0].message.content == upstream.config.reply_text()
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.completion_tokens == upstream.config.token_count
    sent = upstream.requests[-1].body
    assert sent["temperature"] == 0.5
    assert sent["max_tokens"] == 50
    conversations = _conversations(server, "alice")
    assert len(conversations) == before + 1
    conversation_id, source, title = conversations[-1]
    assert (source, title) == ("api", "Say hi")
    assert server.query(
        "SELECT k.prefix FROM conversations_conversation c "
        "JOIN api_apikey k ON k.id = c.api_key_id WHERE c.id = ?",
        conversation_id,
    ) == [(server.keys["alice"][:11],)]
    messages = server.query(
        "SELECT role, content, status, completion_tokens FROM conversations_message "
        "WHERE conversation_id = ? ORDER BY id",
        conversation_id,
    )
    assert messages == [
        ("user", "Say hi", "complete", None),
        ("assistant", upstream.config.reply_text(), "complete", upstream.config.token_count),
    ]


def test_a_stream_arrives_in_chunks_then_done(server, upstream):
    upstream.reset(token_count=30)
    stream = _ask(
        _client(server, server.keys["alice"]),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == upstream.config.reply_text()
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 30


def test_the_raw_stream_is_server_sent_events_ending_with_done(server, upstream):
    body = {"model": "fake-model", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    headers = {"Authorization": f"Bearer {server.keys['alice']}"}
    response = httpx.post(f"{server.api_base}/chat/completions", json=body, headers=headers)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert all(event.startswith("data: ") for event in events if event)
    assert events[-2] == "data: [DONE]"


def test_a_history_and_a_system_prompt_are_forwarded_and_stored(server, upstream):
    _client(server, server.keys["alice"]).chat.completions.create(
        model="fake-model",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "One"},
            {"role": "assistant", "content": "Two"},
            {"role": "user", "content": "Three"},
        ],
    )

    assert upstream.requests[-1].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "Two"},
        {"role": "user", "content": "Three"},
    ]
    conversation_id = _conversations(server, "alice")[-1][0]
    assert server.query(
        "SELECT system_prompt FROM conversations_conversation WHERE id = ?", conversation_id
    ) == [("Be brief.",)]
    stored = server.query(
        "SELECT role, content FROM conversations_message WHERE conversation_id = ? ORDER BY id",
        conversation_id,
    )
    assert stored[:3] == [("user", "One"), ("assistant", "Two"), ("user", "Three")]


def test_an_image_part_is_normalized_forwarded_and_stored(server, upstream):
    png = base64.b64encode(image_files.png((40, 30))).decode()
    _client(server, server.keys["alice"]).chat.completions.create(
        model="fake-model",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                ],
            }
        ],
    )

    parts = upstream.requests[-1].body["messages"][-1]["content"]
    assert parts[0] == {"type": "text", "text": "What is this?"}
    # Normalized as an upload is: an opaque picture is re-encoded as a JPEG.
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    conversation_id = _conversations(server, "alice")[-1][0]
    assert server.query(
        "SELECT a.width, a.height FROM conversations_attachment a "
        "JOIN conversations_message m ON m.id = a.message_id WHERE m.conversation_id = ?",
        conversation_id,
    ) == [(40, 30)]


def test_a_remote_image_or_a_broken_one_is_refused_as_a_bad_request(server, upstream):
    client = _client(server, server.keys["alice"])
    for url in ("https://example.com/cat.png", "data:image/png;base64,bm90IGFuIGltYWdl"):
        content = [{"type": "image_url", "image_url": {"url": url}}]
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="fake-model", messages=[{"role": "user", "content": content}]
            )
        assert refused.value.body["type"] == "invalid_request_error"
    assert upstream.requests == []


def test_bad_requests_name_what_is_wrong(server, upstream):
    client = _client(server, server.keys["alice"])
    with pytest.raises(openai.BadRequestError) as refused:
        _ask(client, temperature=3)
    assert refused.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="fake-model", messages=[{"role": "assistant", "content": "Hi"}]
        )
    assert refused.value.body["param"] == "messages"
    assert upstream.requests == []


def test_models_not_allowed_or_unknown_are_refused(server, upstream):
    client = _client(server, server.keys["alice"])
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(
            model="fake-model-large", messages=[{"role": "user", "content": "Hi"}]
        )
    assert refused.value.code == "model_not_allowed"
    with pytest.raises(openai.NotFoundError) as refused:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])
    assert refused.value.code == "model_not_found"
    assert upstream.requests == []


def test_an_exhausted_quota_is_refused_with_insufficient_quota(server, upstream):
    client = _client(server, server.keys["carol"])
    _ask(client)  # carol's daily quota is one token: this reply uses it up
    with pytest.raises(openai.RateLimitError) as refused:
        _ask(client)
    assert refused.value.code == "insufficient_quota"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert len(upstream.requests) == 1


def test_messages_per_minute_apply_to_the_api(server, upstream):
    client = _client(server, server.keys["erin"])  # erin may send one message a minute
    _ask(client)
    with pytest.raises(openai.RateLimitError) as refused:
        _ask(client)
    assert refused.value.code == "rate_limit_exceeded"
    assert len(upstream.requests) == 1


def test_revoked_expired_and_wrong_keys_are_refused(server, upstream):
    for key in (server.keys["revoked"], server.keys["expired"], "wc-not-a-key"):
        with pytest.raises(openai.AuthenticationError) as refused:
            _ask(_client(server, key))
        assert refused.value.code == "invalid_api_key"
    assert upstream.requests == []
    server.execute("DELETE FROM accounts_loginlockout")


def test_a_session_does_not_authenticate_the_api(server, upstream):
    response = httpx.get(f"{server.api_base}/models", cookies={"sessionid": "anything"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_wrong_keys_lock_the_address_out_for_a_while(server, upstream):
    wrong = _client(server, "wc-guessing")
    answers = []
    for _ in range(6):  # WEBCHAT_API_KEY_MAX_FAILURES is 5
        with pytest.raises(openai.APIStatusError) as refused:
            wrong.models.list()
        answers.append(refused.value.status_code)
    assert answers[-1] == 429
    assert 401 in answers
    # Locked out: even the right key is not looked at.
    with pytest.raises(openai.RateLimitError):
        _client(server, server.keys["alice"]).models.list()
    assert server.query("SELECT scope FROM accounts_loginlockout") == [("api_key",)]
    server.execute("DELETE FROM accounts_loginlockout")
    assert _client(server, server.keys["alice"]).models.list().data


def test_an_upstream_failure_comes_back_as_a_server_error(server, upstream):
    upstream.reset(failure="http_500")
    with pytest.raises(openai.InternalServerError) as refused:
        _ask(_client(server, server.keys["alice"]))
    assert refused.value.status_code == 502
    assert refused.value.body["type"] == "upstream_error"
    upstream.reset(failure="http_500")
    with pytest.raises(openai.InternalServerError):
        _ask(_client(server, server.keys["alice"]), stream=True)


def test_a_stream_that_breaks_after_text_ends_with_an_error_event(server, upstream):
    upstream.reset(failure="drop_mid_stream", token_count=10)
    stream = _ask(_client(server, server.keys["alice"]), stream=True)
    received: list[str] = []

    def read_all() -> None:
        received.extend(chunk.choices[0].delta.content or "" for chunk in stream)

    with pytest.raises(openai.APIError) as failed:
        read_all()
    assert "".join(received)  # the text that arrived was relayed first
    assert failed.value.body["type"] == "upstream_error"
    rows = server.query(
        "SELECT status FROM conversations_message WHERE role = 'assistant' ORDER BY id DESC LIMIT 1"
    )
    assert rows == [("interrupted",)]


def test_a_client_that_leaves_a_stream_stops_the_reply(server, upstream):
    upstream.reset(hold_after=2)
    stream = _ask(_client(server, server.keys["alice"]), stream=True)
    next(iter(stream))
    stream.close()

    def stopped() -> bool:
        rows = server.query(
            "SELECT status FROM conversations_message WHERE role = 'assistant' "
            "ORDER BY id DESC LIMIT 1"
        )
        return rows == [("stopped",)]

    # The upstream holds the rest of the reply until then: only the stop can end it.
    wait_for(stopped, what="the reply to be stored as stopped")
    upstream.release()


def test_fifty_parallel_streams_all_complete(server, upstream):
    upstream.reset(token_count=20)

    async def stream_one(client: openai.AsyncOpenAI, number: int) -> str:
        stream = await client.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": f"Stream {number}"}],
            stream=True,
        )
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream])

    async def all_streams() -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=server.api_base, api_key=server.keys["alice"], max_retries=0, timeout=60
        ) as client:
            return await asyncio.gather(*(stream_one(client, n) for n in range(50)))

    texts = asyncio.run(all_streams())
    assert texts == [upstream.config.reply_text()] * 50
    assert server.query(
        "SELECT COUNT(*) FROM conversations_message WHERE role = 'assistant' "
        "AND status = 'complete' AND content = ?",
        upstream.config.reply_text(),
    ) >= [(50,)]
