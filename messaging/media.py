"""Media by URL: probed when a send is accepted, downloaded by the sender, both through the
SSRF guard, both with the same limits. A server that lies about the size is cut off at the cap
while streaming; a file that changed type between probe and download fails the message."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote, urlsplit

import filetype
import httpx

from api.errors import CATALOGUE, ApiError
from infra.safe_http import FetchFailed, UrlRefused, safe_stream

MB = 1024 * 1024
PROBE_BYTES = 4096
# (longest wait for one step, most the whole fetch may take). The probe runs inside the API
# request; the download in the sender, within its task's time limit.
PROBE_TIMEOUT = (3.0, 5.0)
DOWNLOAD_TIMEOUT = (15.0, 60.0)

_OFFICE = {
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
}
_TEXT = {"text/plain", "text/csv"}

# kind -> (size limit, MIME types allowed)
KINDS: dict[str, tuple[int, frozenset[str]]] = {
    "image": (5 * MB, frozenset({"image/jpeg", "image/png", "image/webp"})),
    "video": (16 * MB, frozenset({"video/mp4", "video/3gpp"})),
    "audio": (16 * MB, frozenset({"audio/aac", "audio/mp4", "audio/m4a", "audio/x-m4a",
                                  "audio/mpeg", "audio/amr", "audio/ogg", "audio/opus"})),
    "document": (100 * MB, frozenset({"application/pdf", "application/zip", *_OFFICE, *_TEXT})),
}


class MediaError(Exception):
    """A media problem with its catalogue code (raised in the worker, turned into a failed
    message there; at acceptance the same checks raise ApiError)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def as_api_error(self) -> ApiError:
        return ApiError(CATALOGUE[self.code], field="url", reason=self.reason)


def _declared_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def decide_type(kind: str, declared: str, head: bytes) -> str:
    """The MIME type to send, from what the server declares and what the first bytes are."""
    allowed = KINDS[kind][1]
    sniffed = filetype.guess_mime(head)
    if sniffed == "application/zip" and declared in _OFFICE:
        sniffed = declared  # docx, xlsx, pptx and OpenDocument files are zip archives
    if sniffed is not None:
        if sniffed not in allowed:
            raise MediaError("invalid_media_type",
                             f"The file is {sniffed}, which is not allowed as {kind}.")
        return sniffed
    if kind == "document" and declared in allowed and declared != "application/zip":
        if declared in _TEXT and b"\x00" in head:
            raise MediaError("invalid_media_type", "The file says text but holds binary data.")
        return declared
    shown = declared or "an unknown type"
    raise MediaError("invalid_media_type",
                     f"The file is {shown}, which is not allowed as {kind}.")


def _total_size(response: httpx.Response) -> int | None:
    if response.status_code == 206:
        return _byte_count(response.headers.get("content-range", "").rpartition("/")[2])
    return _byte_count(response.headers.get("content-length", ""))


def _byte_count(text: str) -> int | None:
    """A size the server declared, if it is one (ASCII digits: `"²".isdigit()` is true too)."""
    return int(text) if text.isascii() and text.isdigit() else None


def _fetch(url: str, *, max_bytes: int, headers: dict[str, str], timeout: tuple[float, float],
           stop_at: int | None = None) -> tuple[httpx.Response, bytes]:
    step, deadline = timeout
    try:
        with safe_stream("GET", url, headers=headers, timeout=step,
                         deadline=deadline) as response:
            if not 200 <= response.status_code < 300:
                raise MediaError("media_url_inaccessible",
                                 f"The URL answered HTTP {response.status_code}.")
            declared_size = _total_size(response)
            if declared_size is not None and declared_size > max_bytes:
                raise MediaError("media_size_exceeded",
                                 f"The file is {declared_size} bytes; the limit is {max_bytes}.")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if stop_at is not None and len(body) >= stop_at:
                    break
                if len(body) > max_bytes:
                    raise MediaError("media_size_exceeded",
                                     f"The file is over the limit of {max_bytes} bytes.")
            return response, bytes(body)
    except UrlRefused as refused:
        raise MediaError("media_url_inaccessible", refused.reason) from refused
    except FetchFailed as failed:
        raise MediaError("media_url_inaccessible", failed.reason) from failed
    except httpx.HTTPError as error:
        raise MediaError("media_url_inaccessible",
                         f"The download failed: {type(error).__name__}.") from error


def media_probe(kind: str, url: str) -> tuple[str, int | None]:
    """Check a media URL before accepting a send: reachable, allowed type, within the size
    limit. Returns (MIME type, size if the server told it)."""
    limit = KINDS[kind][0]
    response, head = _fetch(url, max_bytes=limit, timeout=PROBE_TIMEOUT, stop_at=PROBE_BYTES,
                            headers={"Range": f"bytes=0-{PROBE_BYTES - 1}"})
    return decide_type(kind, _declared_type(response), head[:PROBE_BYTES]), _total_size(response)


def media_download(message) -> tuple[bytes, str]:
    """The whole file for the sender, with the same checks (the file may have changed)."""
    limit = KINDS[message.type][0]
    response, body = _fetch(message.media_url, max_bytes=limit, timeout=DOWNLOAD_TIMEOUT,
                            headers={})
    return body, decide_type(message.type, _declared_type(response), body[:PROBE_BYTES])


def filename_from_url(url: str) -> str:
    name = posixpath.basename(unquote(urlsplit(url).path))
    return name[:255] or "file"
