"""Errors in OpenAI's shape, so that its client libraries raise the right exception:
``{"error": {"message", "type", "param", "code"}}`` with the status they expect."""

from django.http import JsonResponse
from django.utils.translation import gettext

from conversations.upstream import failures

# An upstream failure (``failures.Failure.code``) as the status and type answered.
_FAILURE_ANSWERS = {
    # The server's own key or credit: nothing the caller can fix, so a bad gateway.
    failures.AUTH: (502, "upstream_error", "upstream_auth"),
    failures.QUOTA: (502, "upstream_error", "upstream_quota"),
    failures.BAD_REQUEST: (400, "invalid_request_error", None),
    failures.CONTEXT_LENGTH: (400, "invalid_request_error", "context_length_exceeded"),
    failures.CONTENT_FILTER: (400, "invalid_request_error", "content_filter"),
    failures.RATE_LIMITED: (503, "upstream_error", "upstream_rate_limited"),
    failures.SERVER: (502, "upstream_error", "upstream_server_error"),
    failures.TIMEOUT: (504, "upstream_error", "upstream_timeout"),
    failures.STALLED: (504, "upstream_error", "upstream_stalled"),
    failures.CONNECTION: (502, "upstream_error", "upstream_unreachable"),
    failures.STREAM: (502, "upstream_error", "upstream_stream"),
    failures.INTERRUPTED: (503, "server_error", "interrupted"),
    failures.INTERNAL: (500, "server_error", None),
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    @classmethod
    def invalid(cls, message: str, param: str | None = None) -> "ApiError":
        return cls(400, message, type="invalid_request_error", param=param)

    @classmethod
    def bad_key(cls) -> "ApiError":
        return cls(
            401,
            gettext("Invalid API key: it is wrong, expired or revoked."),
            type="invalid_request_error",
            code="invalid_api_key",
            headers={"WWW-Authenticate": 'Bearer realm="webchat"'},
        )

    @classmethod
    def from_failure(cls, code: str, message: str) -> "ApiError":
        status, kind, answered_code = _FAILURE_ANSWERS.get(code, (502, "upstream_error", None))
        return cls(status, message, type=kind, code=answered_code or code)

    def payload(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JsonResponse:
        response = JsonResponse(self.payload(), status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response
