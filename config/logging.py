"""JSON log lines (LOG_FORMAT=json): one object per line with the request id, and the account
and message ids when the code logging knows them (`extra={"message_id": ...}`)."""

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    FIELDS = ("account_id", "message_id", "session_id", "webhook_id")

    def format(self, record: logging.LogRecord) -> str:
        from config.middleware import current_account_id, current_request_id

        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id.get(),
            "account_id": getattr(record, "account_id", None) or current_account_id.get(),
        }
        for field in self.FIELDS[1:]:
            if getattr(record, field, None):
                line[field] = getattr(record, field)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps({k: v for k, v in line.items() if v is not None})
