"""With WEBCHAT_API_STORE off, an API exchange stores no text, yet counts in the quotas."""

import openai
import pytest

from tests.api.live import ApiServer


@pytest.fixture(scope="module")
def server(tmp_path_factory, fake_upstream_server):
    server = ApiServer(
        tmp_path_factory.mktemp("api-unstored"),
        fake_upstream_server.base_url,
        WEBCHAT_API_STORE="false",
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def upstream(fake_upstream_server):
    fake_upstream_server.reset()
    return fake_upstream_server


def _ask(server: ApiServer, key: str, **options):
    client = openai.OpenAI(base_url=server.api_base, api_key=key, max_retries=0)
    return client.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "Secret words"}], **options
    )


@pytest.mark.parametrize("stream", [False, True])
def test_nothing_is_stored_but_the_counts(server, upstream, stream):
    answer = _ask(server, server.keys["alice"], stream=stream)
    text = (
        "".join(chunk.choices[0].delta.content or "" for chunk in answer)
        if stream
        else answer.choices[0].message.content
    )

    assert text == upstream.config.reply_text()
    assert server.query("SELECT COUNT(*) FROM conversations_conversation") == [(0,)]
    assert server.query("SELECT COUNT(*) FROM conversations_message") == [(0,)]
    assert server.query("SELECT COUNT(*) FROM conversations_attachment") == [(0,)]
    assert server.query(
        "SELECT r.model, r.status, r.completion_tokens, r.runner "
        "FROM conversations_unstoredreply r JOIN auth_user u ON u.id = r.owner_id "
        "WHERE u.username = 'alice' ORDER BY r.id DESC LIMIT 1"
    ) == [("fake-model", "complete", upstream.config.token_count, "")]


def test_unstored_replies_count_against_the_quota(server, upstream):
    _ask(server, server.keys["carol"])  # carol's daily quota is one token: this uses it up
    with pytest.raises(openai.RateLimitError) as refused:
        _ask(server, server.keys["carol"])
    assert refused.value.code == "insufficient_quota"
    assert len(upstream.requests) == 1
