"""Webhook posts (`PinnedEndpoint`): one kept-alive connection to the checked address, a
bounded read of the answer, and every failure reported as FetchFailed. Loopback only."""

import socket

import pytest

from config.safe_http import FetchFailed, PinnedEndpoint
from tests.support.http_server import Route

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


def test_a_closed_port_is_unreachable(receiver):
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with PinnedEndpoint(f"http://127.0.0.1:{port}/hook") as endpoint, \
            pytest.raises(FetchFailed) as failed:
        endpoint.post(b"{}", HEADERS)
    assert failed.value.unreachable and not failed.value.timeout
