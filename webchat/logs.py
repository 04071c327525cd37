"""What each log line says besides its message: the request, user, conversation, reply and
client it concerns, as text or JSON (``WEBCHAT_LOG_FORMAT``), one line per event.

The fields live in a context variable: the middleware (webchat/middleware.py) sets a
request's, the generation carries them into its own task and adds its reply's. The
handler's filters copy them onto every record, so any logger's lines get them. Daphne's
access lines come through ``access_log``, so they are written as they happen, in the same
format.
"""

import logging
from collections.abc import Mapping
from contextvars import Context, ContextVar
from types import MappingProxyType
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# In the order text lines show them.
FIELDS = ("request_id", "user_id", "conversation_id", "reply_id", "client")

_fields: ContextVar[Mapping[str, Any]] = ContextVar("log_fields", default=MappingProxyType({}))

access_logger = logging.getLogger("webchat.access")


def log_context_start(**fields: Any) -> None:
    """Start this context's fields afresh (a new request's), with ``fields``."""
    _fields.set(fields)


def log_context_update(**fields: Any) -> None:
    """Add ``fields`` to every line logged from here on in this context (this request, this
    task and the tasks and threads it starts)."""
    _fields.set({**_fields.get(), **fields})


def log_context_carry(context: Context, **fields: Any) -> None:
    """Give ``context`` (a task's fresh one) this context's fields, with ``fields`` added."""
    context.run(_fields.set, {**_fields.get(), **fields})


class LogContextFilter(logging.Filter):
    """Copies the context's fields onto each record, unless the record has its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _fields.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class ExpectedRefusalFilter(logging.Filter):
    """A request refused with a 4xx (a Host not in ALLOWED_HOSTS, a bad form, a forbidden
    page) is the client's doing: one warning, without the traceback Django attaches."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500 and record.levelno > logging.INFO:
            record.exc_info = None
            record.exc_text = None
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
        return True


class TextFormatter(logging.Formatter):
    """The standard format, followed by the record's known fields in brackets."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        known = [
            f"{name}={value}"
            for name in FIELDS
            if (value := getattr(record, name, None)) not in (None, "")
        ]
        return f"{line} [{' '.join(known)}]" if known else line


def json_formatter() -> JsonFormatter:
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, the known
    fields and any others the line was logged with (``status_code``, an access line's)."""
    return JsonFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        # Django logs refused requests with the request object itself.
        reserved_attrs=[*RESERVED_ATTRS, "taskName", "request"],
    )


def access_log(protocol: str, action: str, details: dict) -> None:
    """Daphne's action logger: a line for each HTTP response and websocket event, written
    as it happens (daphne's own writes to a buffered stdout).

    It starts with the connection's ``peer`` (behind nginx, nginx); an HTTP line is logged
    within its request, so its ``client`` is the request's client, as on its other lines."""
    peer = details.get("client") or ""
    fields = {"peer": peer.rpartition(":")[0] or peer, "path": details["path"]}
    if protocol == "http":
        fields.update(
            method=details["method"],
            status_code=details["status"],
            size=details["size"],
            duration_ms=round(details["time_taken"] * 1000),
        )
        access_logger.info(
            '%s "%s %s" %s %s %sms',
            fields["peer"],
            fields["method"],
            fields["path"],
            fields["status_code"],
            fields["size"],
            fields["duration_ms"],
            extra=fields,
        )
    elif protocol == "websocket":
        access_logger.info(
            '%s "WS %s %s"', fields["peer"], action.upper(), fields["path"], extra=fields
        )
