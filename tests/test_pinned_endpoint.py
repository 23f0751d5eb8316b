"""Webhook posts (`PinnedEndpoint`): one kept-alive connection to the checked address, a
bounded read of the answer, and every failure reported as FetchFailed. Loopback only."""

import contextlib
import socket
import ssl
import threading
import time

import pytest
import trustme

from infra import safe_http
from infra.safe_http import Answer, EndpointPool, FetchFailed, PinnedEndpoint, Post
from tests.support.http_server import Gate, Overlaps, Route

HEADERS = {"Content-Type": "application/json", "webhook-id": "msg_1", "User-Agent": "test/1"}


def test_posts_reuse_one_connection_and_carry_our_headers(receiver):
    with PinnedEndpoint(receiver.url("/hook")) as endpoint:
        answers = [endpoint.post(b'{"n":%d}' % n, HEADERS) for n in range(3)]
    assert [(a.status_code, a.snippet) for a in answers] == [(200, b"ok")] * 3
    hits = receiver.hits_for("/hook")
    assert [hit.body for hit in hits] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    assert len({hit.client_port for hit in hits}) == 1  # one connection, kept alive
    for hit in hits:
        assert hit.headers["Host"] == f"127.0.0.1:{receiver.port}"
        assert hit.headers["webhook-id"] == "msg_1"
        assert hit.headers["Content-Length"] == "7"


def test_a_long_answer_is_cut_to_the_snippet_and_the_next_post_still_goes(receiver):
    receiver.routes["/long"] = Route(status=200, body=b"x" * 5000)
    with PinnedEndpoint(receiver.url("/long")) as endpoint:
        first = endpoint.post(b"{}", HEADERS)
        second = endpoint.post(b"{}", HEADERS)
    assert first.snippet == b"x" * PinnedEndpoint.SNIPPET_BYTES
    assert second.status_code == 200


def test_an_answer_streamed_to_the_close_is_read(receiver):
    receiver.routes["/stream"] = Route(status=202, body=b"accepted", send_length=False)
    with PinnedEndpoint(receiver.url("/stream")) as endpoint:
        answers = [endpoint.post(b"{}", HEADERS) for _ in range(2)]
    assert [(a.status_code, a.snippet) for a in answers] == [(202, b"accepted")] * 2


def test_the_answers_headers_are_kept(receiver):
    receiver.routes["/busy"] = Route(status=429, headers={"Retry-After": "7"})
    with PinnedEndpoint(receiver.url("/busy")) as endpoint:
        answer = endpoint.post(b"{}", HEADERS)
    assert answer.status_code == 429
    assert answer.headers.get("retry-after") == "7"


def test_no_answer_in_time_is_a_timeout(receiver):
    receiver.routes["/slow"] = Route(status=200, delay=1.0)
    with PinnedEndpoint(receiver.url("/slow"), timeout=0.2) as endpoint, \
            pytest.raises(FetchFailed) as failed:
        endpoint.post(b"{}", HEADERS)
    assert failed.value.timeout and not failed.value.unreachable


def test_an_answer_dripped_a_byte_at_a_time_ends_at_the_deadline(receiver):
    # Each byte comes within the 0.5 s a read may wait; the whole answer would take 10 s.
    receiver.routes["/drip"] = Route(status=200, body=b"ok", drip=0.1)
    with PinnedEndpoint(receiver.url("/drip"), timeout=0.5) as endpoint, \
            pytest.raises(FetchFailed) as failed:
        endpoint.post(b"{}", HEADERS)
    assert failed.value.timeout
    assert endpoint.connection is None  # a connection cut mid-answer is never reused


def test_a_closed_port_is_unreachable(receiver):
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with PinnedEndpoint(f"http://127.0.0.1:{port}/hook") as endpoint, \
            pytest.raises(FetchFailed) as failed:
        endpoint.post(b"{}", HEADERS)
    assert failed.value.unreachable and not failed.value.timeout


class RawServer:
    """A loopback HTTP/1.1 server written with sockets, for what http.server cannot do: close
    a kept-alive connection while the client is idle, or speak TLS with a test CA's
    certificate. Answers every request `200 ok` with a Content-Length (keep-alive)."""

    def __init__(self, *, tls=None, close_after_answer: bool = False,
                 says_close: bool = False) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.tls, self.close_after_answer = tls, close_after_answer
        self.says_close = says_close  # "Connection: close" in the answer, the socket kept open
        self.connections, self.server_names = 0, []
        self.closed = threading.Event()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self.answer, args=(connection,), daemon=True).start()

    def answer(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError):
            if self.tls is not None:
                connection = self.tls.wrap_socket(connection, server_side=True)
            stream = connection.makefile("rb")
            while True:
                length = 0
                while (line := stream.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                if line == b"":
                    return
                stream.read(length)
                close = b"Connection: close\r\n" if self.says_close else b""
                connection.sendall(b"HTTP/1.1 200 OK\r\n" + close
                                   + b"Content-Length: 2\r\n\r\nok")
                if self.close_after_answer:
                    connection.close()
                    self.closed.set()
                    return

    def stop(self) -> None:
        self.listener.close()


@pytest.fixture
def raw_server(settings):
    settings.ALLOW_PRIVATE_URLS = True  # loopback, as with `receiver`
    servers = []

    def start(**kwargs) -> RawServer:
        servers.append(RawServer(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_a_connection_the_server_closed_while_idle_is_replaced_before_posting(raw_server):
    server = raw_server(close_after_answer=True)
    with PinnedEndpoint(f"http://127.0.0.1:{server.port}/hook") as endpoint:
        first = endpoint.post(b"{}", HEADERS)
        assert server.closed.wait(5)
        time.sleep(0.05)  # the close reaches the client's socket
        second = endpoint.post(b"{}", HEADERS)
    assert [first.status_code, second.status_code] == [200, 200]
    assert server.connections == 2


def test_a_connection_idle_past_the_keepalive_is_replaced(raw_server, monkeypatch):
    server = raw_server()
    monkeypatch.setattr(PinnedEndpoint, "KEEPALIVE_SECONDS", 0.05)
    with PinnedEndpoint(f"http://127.0.0.1:{server.port}/hook") as endpoint:
        endpoint.post(b"{}", HEADERS)
        endpoint.post(b"{}", HEADERS)
        assert server.connections == 1
        time.sleep(0.1)
        assert endpoint.post(b"{}", HEADERS).status_code == 200
    assert server.connections == 2


def test_an_answer_that_says_close_ends_the_connection(raw_server):
    server = raw_server(says_close=True)
    with PinnedEndpoint(f"http://127.0.0.1:{server.port}/hook") as endpoint:
        answers = [endpoint.post(b"{}", HEADERS).status_code for _ in range(2)]
    assert answers == [200, 200]
    assert server.connections == 2


class CountingSocket:
    """A socket that counts its writes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.writes = sock, []

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.sock.sendall(data)

    def send(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return self.sock.send(data)

    def __getattr__(self, name: str):
        return getattr(self.sock, name)


def test_a_post_goes_out_in_one_write_head_and_body_together(receiver):
    with PinnedEndpoint(receiver.url("/hook")) as endpoint:
        endpoint.post(b"{}", HEADERS)  # connects
        counting = endpoint.connection.sock = CountingSocket(endpoint.connection.sock)
        assert endpoint.post(b'{"n":1}', HEADERS).status_code == 200
    assert len(counting.writes) == 1
    head, _, body = counting.writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /hook HTTP/1.1\r\n") and body == b'{"n":1}'
    assert receiver.hits_for("/hook")[-1].body == b'{"n":1}'


@pytest.mark.parametrize("headers", [{"webhook-id": "msg_1\r\nX-Injected: 1"},
                                     {"X-A\nB": "1"}])
def test_a_header_that_would_break_the_request_is_refused_unsent(receiver, headers):
    with PinnedEndpoint(receiver.url("/hook")) as endpoint, pytest.raises(ValueError):
        endpoint.send(b"{}", headers)
    assert receiver.hits_for("/hook") == []


@pytest.fixture
def test_ca(monkeypatch):
    """A certificate authority that the posts trust instead of the public ones."""
    ca = trustme.CA()
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    monkeypatch.setattr(safe_http, "_ssl_context", lambda: client_context)
    return ca


def tls_server(ca, raw_server, name: str) -> RawServer:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(name).configure_cert(context)
    server = raw_server(tls=context)
    context.sni_callback = lambda sock, server_name, ctx: server.server_names.append(
        server_name)
    return server


def test_tls_goes_to_the_checked_address_with_the_urls_name_as_sni_and_for_the_certificate(
        test_ca, raw_server):
    server = tls_server(test_ca, raw_server, "localhost")
    with PinnedEndpoint(f"https://localhost:{server.port}/hook") as endpoint:
        answers = [endpoint.post(b"{}", HEADERS) for _ in range(2)]
    assert [(a.status_code, a.snippet) for a in answers] == [(200, b"ok")] * 2
    assert server.connections == 1
    assert server.server_names == ["localhost"]


def test_tls_with_a_certificate_for_another_name_is_refused(test_ca, raw_server):
    server = tls_server(test_ca, raw_server, "elsewhere.example")
    with PinnedEndpoint(f"https://localhost:{server.port}/hook") as endpoint, \
            pytest.raises(FetchFailed) as failed:
        endpoint.post(b"{}", HEADERS)
    assert failed.value.unreachable
    assert "Verification" in failed.value.reason or "SSL" in failed.value.reason


# --- EndpointPool: several posts in flight to one endpoint --------------------------------


def posted(pool: EndpointPool, bodies: list[bytes]) -> dict[bytes, Answer | FetchFailed]:
    return {key: answer for key, answer, _seconds in
            pool.post_all(Post(body, body, body, HEADERS) for body in bodies)}


def test_a_pool_has_up_to_its_size_in_flight_each_on_a_kept_alive_connection(receiver):
    receiver.routes["/hook"] = Route(status=200, body=b"ok", on_request=Gate(3))
    bodies = [b'{"n":%d}' % n for n in range(6)]
    with EndpointPool(receiver.url("/hook"), size=3) as pool:
        answers = posted(pool, bodies)
    # The gate lets requests through three at a time only: one at a time would get 500s.
    assert {body: answer.status_code for body, answer in answers.items()} == dict.fromkeys(
        bodies, 200)
    hits = receiver.hits_for("/hook")
    assert sorted(hit.body for hit in hits) == sorted(bodies)
    assert len({hit.client_port for hit in hits}) == 3  # three connections, each reused


def test_a_post_out_of_time_fails_alone_while_the_others_are_answered(receiver):
    def answer(hit):
        if hit.body == b"slow":
            time.sleep(1.0)

    receiver.routes["/hook"] = Route(status=200, body=b"ok", on_request=answer)
    with EndpointPool(receiver.url("/hook"), size=3, timeout=0.3) as pool:
        answers = posted(pool, [b"fast-1", b"slow", b"fast-2", b"fast-3"])
    assert answers[b"slow"].timeout
    assert [answers[body].status_code for body in (b"fast-1", b"fast-2", b"fast-3")] == [200] * 3


def test_a_pool_sends_nothing_more_once_its_caller_says_stop(receiver):
    receiver.routes["/hook"] = Route(status=200, body=b"ok", on_request=Gate(
        2, answer=lambda hit: 503 if hit.body == b"bad" else None))
    outcomes = {}

    posts = [Post(body, body, body, HEADERS)
             for body in (b"bad", b"ok-1", b"ok-2", b"ok-3", b"ok-4")]
    with EndpointPool(receiver.url("/hook"), size=2) as pool:
        for body, answer, _seconds in pool.post_all(
                posts, go_on=lambda: 503 not in outcomes.values()):
            outcomes[body] = answer.status_code
    sent = [hit.body for hit in receiver.hits_for("/hook")]
    assert outcomes[b"bad"] == 503 and outcomes[b"ok-1"] == 200
    # At most one more was drawn (when ok-1's answer came before bad's): every post sent
    # was answered and reported, and nothing after the stop was sent.
    assert sent[:2] == [b"bad", b"ok-1"] or sent[:2] == [b"ok-1", b"bad"]
    assert len(sent) <= 3 and set(outcomes) == set(sent)


def test_posts_of_one_subject_go_one_at_a_time_in_order_and_others_pass_them(receiver):
    overlaps = Overlaps(lambda hit: hit.body[:1], hold=0.1)
    receiver.routes["/hook"] = Route(status=200, body=b"ok", on_request=overlaps)
    bodies = [b"a1", b"a2", b"a3", b"b1", b"b2", b"c1"]
    with EndpointPool(receiver.url("/hook"), size=4) as pool:
        answers = {key: answer for key, answer, _seconds in pool.post_all(
            Post(body, body[:1], body, HEADERS) for body in bodies)}
    assert {answer.status_code for answer in answers.values()} == {200}
    assert overlaps.one_subject_at_a_time()
    sent = [hit.body for hit in receiver.hits_for("/hook")]
    for subject in (b"a", b"b"):
        assert [body for body in sent if body[:1] == subject] == sorted(
            body for body in bodies if body[:1] == subject)
    # b1 and c1 went past a2 and a3, which waited for a1: three were in flight together.
    assert overlaps.most_beside() == 2


def test_posts_to_a_closed_port_each_fail_as_unreachable(settings):
    settings.ALLOW_PRIVATE_URLS = True  # loopback
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with EndpointPool(f"http://127.0.0.1:{port}/hook", size=2) as pool:
        answers = posted(pool, [b"1", b"2", b"3"])
    assert all(answer.unreachable for answer in answers.values()) and len(answers) == 3


def test_a_pool_refuses_what_the_guard_refuses(settings):
    settings.ALLOW_PRIVATE_URLS = False
    with pytest.raises(safe_http.UrlRefused):
        EndpointPool("http://127.0.0.1:9/hook")


def test_tls_posts_in_flight_together_each_check_the_certificate(test_ca, raw_server):
    server = tls_server(test_ca, raw_server, "localhost")
    with EndpointPool(f"https://localhost:{server.port}/hook", size=3) as pool:
        answers = posted(pool, [b"1", b"2", b"3", b"4", b"5", b"6"])
    assert {answer.status_code for answer in answers.values()} == {200}
    assert server.connections == 3  # three sent before the first answer is read
    assert server.server_names == ["localhost"] * 3
