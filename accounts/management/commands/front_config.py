"""Write the web front's nginx configuration (deploy/supervisord.conf runs it before nginx).

nginx reads each request whole before a gunicorn worker sees it and takes each answer whole to
send it on: a slow or idle client holds one of nginx's connections, never one of gunicorn's
sync workers. What nginx refuses itself (a URL or headers over its buffers, a body over its
limit, the web processes down) is answered in the API's envelope, from the error catalogue."""

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.template.loader import render_to_string

from api.errors import ApiError, E
from api.exception_handler import error_body

# Over Django's own limit (DATA_UPLOAD_MAX_MEMORY_SIZE), which answers with its exact size; a
# body past this one is refused by nginx before it reaches a worker.
BODY_LIMIT_BYTES = 4 * 1024 * 1024
# Request line and each header: gunicorn checks nothing (it runs with no limits behind nginx).
HEADER_BUFFER = "16k"


def _nginx_text(err: ApiError) -> str:
    """The error's envelope as an nginx string literal (single-quoted)."""
    text = json.dumps(error_body(err), separators=(",", ":"))
    if "$" in text:  # nginx would read it as a variable
        raise CommandError(f"{err.code}: a '$' cannot be written in nginx's configuration")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Command(BaseCommand):
    help = "Write the nginx configuration of the web front."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", required=True, help="the file to write")
        parser.add_argument("--listen", required=True,
                            help="nginx's listen address, e.g. 8000 or 0.0.0.0:80")
        parser.add_argument("--upstream", required=True,
                            help="gunicorn's address, e.g. unix:/run/whatsapp-api/web.sock")
        parser.add_argument("--run-dir", required=True,
                            help="a folder of nginx's own (pid file, request buffers)")

    def handle(self, *args, **options) -> None:
        run_dir = Path(options["run_dir"]).resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        body_limit = max(BODY_LIMIT_BYTES, settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1024)
        # (nginx's statuses, the envelope of the catalogue's error it stands for)
        refusals = {
            "too_long": ("414 494", ApiError(E.invalid_request, reason=(
                f"The URL or a header is too long: at most {HEADER_BUFFER}B each."))),
            "too_large": ("413", ApiError(E.invalid_request, reason=(
                f"The body is too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} "
                "bytes."))),
            "malformed": ("400", ApiError(E.invalid_request,
                                          reason="The request is not valid HTTP.")),
            "unavailable": ("502 503 504", ApiError(E.service_unavailable, reason=(
                "The web processes are not answering; they are being restarted."))),
        }
        text = render_to_string("deploy/nginx.conf", {
            "listen": options["listen"], "upstream": options["upstream"],
            "run_dir": str(run_dir), "body_limit": body_limit, "header_buffer": HEADER_BUFFER,
            "refusals": [(name, codes, err.status_code, _nginx_text(err))
                         for name, (codes, err) in refusals.items()],
        })
        Path(options["output"]).write_text(text)
