"""What each upstream failure means for the user, decided without the network."""

from collections import Counter

import httpx
import pytest

from conversations.upstream import client as upstream
from conversations.upstream import failures
from conversations.upstream.client import UpstreamError
from conversations.upstream.failures import RetryPolicy, StreamStalled, failure_for

POLICY = RetryPolicy(rate_limit_retries=3, server_error_retries=2, max_wait=60.0, base_delay=1.0)


def _http(status: int, message: str = "Upstream says no.", **extra) -> UpstreamError:
    return UpstreamError(message, kind="http", status_code=status, from_provider=True, **extra)


def _decide(error, *, text_arrived=False, retries=None):
    return failure_for(
        error, text_arrived=text_arrived, retries=Counter(retries or {}), policy=POLICY
    )


@pytest.mark.parametrize(
    ("status", "code", "says"),
    [
        (401, failures.AUTH, "contact your administrator"),
        (403, failures.AUTH, "contact your administrator"),
        (402, failures.QUOTA, "credit or quota is used up"),
        (413, failures.CONTEXT_LENGTH, "start a new conversation"),
        (400, failures.BAD_REQUEST, "refused the request."),
        (404, failures.BAD_REQUEST, "refused the request."),
    ],
)
def test_refusals_that_retrying_cannot_fix_are_not_retried(status, code, says):
    failure = _decide(_http(status))
    assert (failure.code, failure.retry_in) == (code, None)
    assert says in failure.message
    assert failure.detail == "Upstream says no."
    assert code in failures.HOPELESS_CODES


@pytest.mark.parametrize(
    "error",
    [
        _http(429, "You exceeded your current quota.", code="insufficient_quota"),
        _http(429, "You exceeded your current quota, please check your plan and billing."),
        _http(429, "Resource has been exhausted (e.g. check quota).", code="RESOURCE_EXHAUSTED"),
        _http(500, "insufficient balance (1008)", code="api_error"),
        _http(402, "Insufficient Balance", code="invalid_request_error"),
    ],
)
def test_a_spent_account_is_not_retried_and_alerts_the_admin(error):
    failure = _decide(error)
    assert (failure.code, failure.retry_in) == (failures.QUOTA, None)
    assert failure.alert_admin
    assert failure.detail == error.message


def test_an_exhausted_resource_with_a_time_to_wait_is_a_passing_rate_limit():
    error = _http(
        429,
        "You exceeded your current quota. Please retry in 34.4s.",
        code="RESOURCE_EXHAUSTED",
        retry_after=34.4,
    )
    failure = _decide(error)
    assert (failure.code, failure.retry_in) == (failures.RATE_LIMITED, 34.4)


def test_a_key_refused_with_a_400_is_still_a_rejected_key():
    failure = _decide(
        _http(400, "API key not valid. Please pass a valid API key.", code="API_KEY_INVALID")
    )
    assert failure.code == failures.AUTH


def test_the_providers_words_are_made_storable():
    failure = _decide(_http(400, "bad\x00 input \ud83d"))
    assert failure.detail == "bad\ufffd input \ufffd"


def test_only_the_providers_own_words_are_kept_as_the_detail():
    assert (
        _decide(UpstreamError("HTTP 418 from the upstream", kind="http", status_code=418)).detail
        == ""
    )


def test_a_rejected_key_and_an_empty_account_alert_the_admin():
    assert _decide(_http(401)).alert_admin
    assert _decide(_http(402)).alert_admin
    assert not _decide(_http(400)).alert_admin


@pytest.mark.parametrize(
    "error",
    [
        _http(400, "This model's maximum context length is 8192 tokens."),
        _http(400, "Your input exceeds the context window of this model."),
        _http(400, "The input token count exceeds the maximum number of tokens allowed."),
        _http(400, "prompt is too long: 210000 tokens > 200000 maximum"),
        _http(400, "Please shorten it.", code="context_length_exceeded"),
        UpstreamError("Context length exceeded.", kind="stream"),
    ],
)
def test_a_context_length_error_says_the_conversation_is_too_long(error):
    failure = _decide(error)
    assert failure.code == failures.CONTEXT_LENGTH
    assert failure.retry_in is None


def test_a_rate_limit_waits_as_long_as_retry_after_says():
    failure = _decide(_http(429, retry_after=7.0))
    assert (failure.code, failure.retry_in) == (failures.RATE_LIMITED, 7.0)


def test_a_rate_limit_without_retry_after_backs_off_exponentially():
    waits = [_decide(_http(429), retries={"rate_limited": n}).retry_in for n in range(3)]
    assert waits == [1.0, 2.0, 4.0]


def test_a_rate_limit_gives_up_after_the_retry_bound():
    failure = _decide(_http(429, retry_after=1.0), retries={"rate_limited": 3})
    assert failure.retry_in is None
    assert "try again in a minute" in failure.message


def test_a_rate_limit_asking_for_too_long_a_wait_gives_up_at_once():
    failure = _decide(_http(429, retry_after=120.0))
    assert failure.retry_in is None
    assert "try again in 120 s" in failure.message


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_server_error_before_any_text_is_retried_then_given_up(status):
    first = _decide(_http(status))
    assert (first.code, first.retry_in) == (failures.SERVER, 1.0)
    assert _decide(_http(status), retries={"server": 1}).retry_in == 2.0
    last = _decide(_http(status), retries={"server": 2})
    assert last.retry_in is None
    assert f"HTTP {status}" in last.message


def test_a_server_error_honours_retry_after():
    assert _decide(_http(503, retry_after=3.0)).retry_in == 3.0


def test_a_server_error_after_text_arrived_is_not_retried():
    assert _decide(_http(500), text_arrived=True).retry_in is None


@pytest.mark.parametrize(
    ("cause", "says"),
    [
        (httpx.ConnectTimeout("slow"), "could not be reached in time"),
        (httpx.ReadTimeout("slow"), "took too long"),
    ],
)
def test_timeouts_are_told_apart_and_not_retried(cause, says):
    error = UpstreamError("The upstream timed out.", kind="timeout")
    error.__cause__ = cause
    failure = _decide(error)
    assert (failure.code, failure.retry_in) == (failures.TIMEOUT, None)
    assert says in failure.message


def test_a_stall_names_how_long_nothing_arrived():
    failure = _decide(StreamStalled(2.5), text_arrived=True)
    assert failure.code == failures.STALLED
    assert "2.5 s" in failure.message


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (upstream.MALFORMED_CHUNK, "could not be read"),
        (upstream.ENDED_EARLY, "before it was complete"),
        (upstream.NOT_AN_EVENT_STREAM, "unexpected form"),
    ],
)
def test_stream_failures_show_their_reason(message, says):
    failure = _decide(UpstreamError(message, kind="stream"), text_arrived=True)
    assert failure.code == failures.STREAM
    assert says in failure.message
    assert failure.retry_in is None


def test_a_connection_dropped_mid_reply_is_not_retried():
    failure = _decide(UpstreamError("reset", kind="connection"), text_arrived=True)
    assert (failure.code, failure.retry_in) == (failures.CONNECTION, None)


def test_a_connection_dropped_before_any_answer_is_tried_again_at_once_once():
    first = _decide(UpstreamError("reset", kind="connection"))
    assert (first.code, first.retry_in) == (failures.CONNECTION, 0.0)
    again = _decide(UpstreamError("reset", kind="connection"), retries={failures.CONNECTION: 1})
    assert (again.code, again.retry_in) == (failures.CONNECTION, None)
    assert "connection to the chat service was lost" in again.message


def test_a_service_that_cannot_be_reached_is_not_retried():
    error = UpstreamError("refused", kind="connection")
    error.__cause__ = httpx.ConnectError("refused")
    failure = _decide(error)
    assert (failure.code, failure.retry_in) == (failures.CONNECTION, None)


def test_the_retry_notice_counts_whole_seconds():
    assert failures.retry_notice(failures.RATE_LIMITED, 2.2) == "Rate limited, retrying in 3 s…"
    assert failures.retry_notice(failures.RATE_LIMITED, 0.01) == "Rate limited, retrying in 1 s…"
    assert "retrying in 2 s" in failures.retry_notice(failures.SERVER, 2.0)


def test_an_error_the_provider_reports_mid_stream_keeps_its_words_as_the_detail():
    error = UpstreamError("The model stopped unexpectedly.", kind="stream", from_provider=True)
    failure = _decide(error, text_arrived=True)
    assert failure.code == failures.STREAM
    assert failure.message == "The chat service reported an error."
    assert failure.detail == "The model stopped unexpectedly."
