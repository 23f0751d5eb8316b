"""A local HTTP server standing in for customers' media and webhook URLs (loopback only).
Routes are set per test; every request is recorded."""

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    honour_range: bool = True
    declared_length: int | None = None  # lie about the size
    send_length: bool = True  # False: no Content-Length at all (streamed to close)
    delay: float = 0.0
    # Seconds between the bytes of the answer, headers included (a server that drips it).
    drip: float = 0.0
    # Called with each request before it is answered (it may block: a barrier, a pause);
    # a status it returns replaces `status`.
    on_request: Callable[["Hit"], int | None] | None = None


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int = 0  # tells connections apart


class Gate:
    """A `Route.on_request` that holds requests until `parties` of them are in flight at
    once, then lets them all be answered: a client that posts one at a time never gets
    through (after `timeout`, each is answered 500). `answer(hit)` may pick the status."""

    def __init__(self, parties: int, answer: Callable[[Hit], int | None] = lambda hit: None,
                 timeout: float = 4.0) -> None:
        self.barrier = threading.Barrier(parties, timeout=timeout)
        self.answer = answer

    def __call__(self, hit: Hit) -> int | None:
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            return 500
        return self.answer(hit)


class Overlaps:
    """A `Route.on_request` that holds each request `hold` seconds and records the subjects
    (`subject_of(hit)`) of the requests in flight beside it: what a client sent together,
    and what it never did."""

    def __init__(self, subject_of: Callable[[Hit], object], hold: float = 0.05) -> None:
        self.subject_of, self.hold = subject_of, hold
        self.inside: list[object] = []
        self.beside: list[tuple[object, list[object]]] = []  # (subject, others in flight)
        self.lock = threading.Lock()

    def __call__(self, hit: Hit) -> None:
        subject = self.subject_of(hit)
        with self.lock:
            self.beside.append((subject, list(self.inside)))
            self.inside.append(subject)
        time.sleep(self.hold)
        with self.lock:
            self.inside.remove(subject)

    def one_subject_at_a_time(self) -> bool:
        return all(subject not in others for subject, others in self.beside)

    def most_beside(self) -> int:
        return max(len(others) for _subject, others in self.beside)


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A client that hangs up mid-request (a timeout being tested, a pool closed with a
        # connection kept alive) is what some tests do on purpose: not worth a traceback in
        # the suite's output. Anything else still prints one.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class LocalServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: list[Hit] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _serve(self, with_body: bool) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                hit = Hit(self.command, self.path, dict(self.headers), body,
                          self.client_address[1])
                server.hits.append(hit)
                route = server.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = route.on_request(hit) if route.on_request else None
                if route.delay:
                    time.sleep(route.delay)
                payload, status = route.body, status or route.status
                headers = {"Content-Type": route.content_type, **route.headers}
                wanted = self.headers.get("Range", "")
                if route.honour_range and wanted.startswith("bytes=") and status == 200:
                    start, _, end = wanted[6:].partition("-")
                    start, end = int(start), min(int(end), len(payload) - 1)
                    total = route.declared_length or len(payload)
                    payload = payload[start:end + 1]
                    status = 206
                    headers["Content-Range"] = f"bytes {start}-{end}/{total}"
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if route.send_length:
                    declared = route.declared_length if status == 200 else None
                    self.send_header("Content-Length", str(declared or len(payload)))
                else:
                    self.send_header("Connection", "close")
                if route.drip:
                    self.close_connection = True
                    head = b"".join(self._headers_buffer) + b"\r\n"
                    self._headers_buffer = []
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        for byte in head + (payload if with_body else b""):
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(route.drip)
                    return
                self.end_headers()
                if with_body:
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self.wfile.write(payload)
                if not route.send_length:
                    self.close_connection = True

            def do_GET(self):
                self._serve(True)

            def do_POST(self):
                self._serve(True)

            def do_HEAD(self):
                self._serve(False)

        self.httpd = _Server((host, port), Handler)
        self.port = self.httpd.server_address[1]
        self.base = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "LocalServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return self.base + path

    def hits_for(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path.split("?")[0] == path]


# Small real files, enough for type sniffing.
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
       b"\x00\x1f\x15\xc4\x89" + b"\x00" * 64)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x0f" + b"\xff\xfb\x90\x00" + b"\x00" * 64
