"""Log lines that name what they are about. With LOG_FORMAT=json every line is one JSON object
with the request id and, for an authenticated request, the account id; the code logging adds
message, session and webhook ids where it knows them (`extra={"message_id": ...}`)."""

import contextvars
import json
import logging
from datetime import UTC, datetime
from typing import Any

# The request being served (set by the API's middleware), for lines written deep in the stack.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_request_id", default=None)
# Its API key once admitted (anything with `account_id` and `prefix`): the log lines and the
# API error log say whose request it was.
current_api_key: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "current_api_key", default=None)


class JsonFormatter(logging.Formatter):
    FIELDS = ("message_id", "session_id", "webhook_id")

    def format(self, record: logging.LogRecord) -> str:
        key = current_api_key.get()
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id.get(),
            "account_id": (getattr(record, "account_id", None)
                           or getattr(key, "account_id", None)),
        }
        for field in self.FIELDS:
            if getattr(record, field, None):
                line[field] = getattr(record, field)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps({k: v for k, v in line.items() if v is not None})
