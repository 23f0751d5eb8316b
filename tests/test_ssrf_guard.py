"""The SSRF guard. Address checks are tested as data (no connection is ever opened to a
non-loopback address); end-to-end refusals use loopback spellings only."""

import ipaddress

import pytest

from infra import safe_http
from infra.safe_http import UrlRefused, address_refusal, check_url
from tests.conftest import assert_error, connected_session
from tests.support.http_server import PNG, LocalServer, Route

HOSTILE = [
    "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1", "172.31.255.255",
    "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
    "255.255.255.255", "198.18.0.1", "192.0.2.1", "240.0.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "2002:7f00:1::", "2002:c0a8:101::", "64:ff9b::a00:1", "64:ff9b::7f00:1",
    # Forms Python calls global: IPv4-compatible, IPv4-translated, local-use NAT64, site-local.
    "::127.0.0.1", "::10.0.0.1", "::ffff:0:7f00:1", "::ffff:0:a9fe:a9fe",
    "64:ff9b:1::7f00:1", "64:ff9b:1::808:808", "fec0::1", "feff::1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8",
          "64:ff9b::808:808"]


@pytest.mark.parametrize("address", HOSTILE)
def test_non_public_addresses_are_refused(address):
    assert address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_unicast_addresses_pass(address):
    assert address_refusal(ipaddress.ip_address(address)) is None


@pytest.fixture
def fake_dns(monkeypatch):
    """Names resolve to what the test says; no real DNS query is made."""
    answers: dict[str, list[str]] = {}

    def resolve(host, port):
        return [ipaddress.ip_address(a) for a in answers[host]]

    monkeypatch.setattr(safe_http, "resolve", resolve)
    return answers


@pytest.mark.parametrize("answer", [["10.0.0.5"], ["8.8.8.8", "192.168.0.10"],
                                    ["::ffff:127.0.0.1"], ["169.254.169.254"]])
def test_a_name_resolving_to_a_private_address_is_refused(fake_dns, settings, answer):
    settings.ALLOW_PRIVATE_URLS = False
    fake_dns["media.customer.example"] = answer
    with pytest.raises(UrlRefused):
        check_url("https://media.customer.example/a.png")


def test_a_refusal_does_not_say_what_a_name_resolves_to(fake_dns, settings):
    settings.ALLOW_PRIVATE_URLS = False
    fake_dns["media.customer.example"] = ["10.1.2.3"]
    with pytest.raises(UrlRefused) as refused:
        check_url("https://media.customer.example/a.png")
    assert "10.1.2.3" not in refused.value.reason and "private" not in refused.value.reason
    assert refused.value.reason == "media.customer.example does not resolve to a public address"


def test_the_connection_is_pinned_to_the_checked_address(fake_dns, settings):
    settings.ALLOW_PRIVATE_URLS = False
    fake_dns["cdn.customer.example"] = ["93.184.216.34"]
    target = check_url("https://cdn.customer.example:8443/p/a.png?x=1")
    assert target.url == "https://93.184.216.34:8443/p/a.png?x=1"
    assert target.host_header == "cdn.customer.example:8443"
    assert target.sni_hostname == "cdn.customer.example"


@pytest.mark.parametrize("url", ["ftp://example.com/a", "file:///etc/passwd", "gopher://x/",
                                 "http://", "not a url", "http://user:pw@example.com/",
                                 "http://[::1/", "http://example.com/a\x00",
                                 "http://example.com/\x7f", "http://exa mple.com/"])
def test_malformed_or_non_http_urls_are_refused_without_resolving(url, monkeypatch):
    monkeypatch.setattr(safe_http, "resolve", lambda *a: pytest.fail("must not resolve"))
    with pytest.raises(UrlRefused):
        check_url(url)


def test_spaces_in_the_path_and_query_are_sent_encoded(fake_dns, settings):
    settings.ALLOW_PRIVATE_URLS = False
    fake_dns["cdn.customer.example"] = ["93.184.216.34"]
    target = check_url("https://cdn.customer.example/my photo.png?name=a b")
    assert target.url == "https://93.184.216.34:443/my%20photo.png?name=a%20b"


# --- end to end, through the API, loopback only ----------------------------------------------



@pytest.fixture
def server():
    with LocalServer("127.0.0.1") as local:
        local.routes["/a.png"] = Route(body=PNG, content_type="image/png")
        yield local


LOOPBACK_SPELLINGS = ["127.1", "2130706433", "0x7f000001", "[::1]", "[::ffff:127.0.0.1]",
                      "localhost", "0.0.0.0", "127.000.000.001", "017700000001"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_loopback_in_any_spelling_is_refused_before_connecting(alice, server, settings, host):
    settings.ALLOW_PRIVATE_URLS = False
    session = connected_session(alice)
    response = alice.http.post("/v1/messages/image", json={
        "sessionId": session["id"], "to": "14155550123",
        "url": f"http://{host}:{server.port}/a.png"})
    assert_error(response, 400, "media_url_inaccessible", "url")
    assert server.hits == []


@pytest.mark.django_db(transaction=True)
def test_a_redirect_to_loopback_is_refused(alice, settings, monkeypatch):
    settings.ALLOW_PRIVATE_URLS = False
    real_refusal = safe_http.address_refusal
    # 127.0.0.2 plays a public host here; every other address keeps the real rules.
    monkeypatch.setattr(safe_http, "address_refusal",
                        lambda a: None if str(a) == "127.0.0.2" else real_refusal(a))
    with LocalServer("127.0.0.1") as inside, LocalServer("127.0.0.2") as outside:
        inside.routes["/secret.png"] = Route(body=PNG, content_type="image/png")
        outside.routes["/a.png"] = Route(status=302, headers={
            "Location": f"http://127.0.0.1:{inside.port}/secret.png"})
        session = connected_session(alice)
        response = alice.http.post("/v1/messages/image", json={
            "sessionId": session["id"], "to": "14155550123", "url": outside.url("/a.png")})
        error = assert_error(response, 400, "media_url_inaccessible", "url")
        assert "127.0.0.1" in error["details"]["reason"]
        assert len(outside.hits) == 1
        assert inside.hits == []


@pytest.mark.parametrize("url", ["http://example.com/a", "http://8.8.8.8/a", "http://10.0.0.1/a"])
def test_loopback_only_mode_resolves_no_name_and_reaches_no_other_address(url, settings,
                                                                          monkeypatch):
    from infra.safe_http import FetchFailed

    settings.OUTBOUND_LOOPBACK_ONLY = True
    settings.ALLOW_PRIVATE_URLS = True
    monkeypatch.setattr(safe_http.socket, "getaddrinfo",
                        lambda *a, **k: pytest.fail("no name may be resolved"))
    with pytest.raises(FetchFailed):
        check_url(url)
    assert check_url("http://localhost:1/x").url == "http://127.0.0.1:1/x"


@pytest.mark.django_db(transaction=True)
def test_a_media_url_with_a_control_character_is_refused_unfetched(alice, server, settings):
    settings.ALLOW_PRIVATE_URLS = True  # the loopback server may be reached: only the URL fails
    session = connected_session(alice)
    response = alice.http.post("/v1/messages/image", json={
        "sessionId": session["id"], "to": "14155550123",
        "url": f"http://127.0.0.1:{server.port}/a.png\x7f"})
    error = assert_error(response, 400, "media_url_inaccessible", "url")
    assert error["details"]["reason"] == "the URL is malformed"
    assert server.hits == []


@pytest.mark.django_db(transaction=True)
def test_a_media_url_with_a_space_is_fetched_with_the_space_encoded(alice, server, settings):
    settings.ALLOW_PRIVATE_URLS = True
    server.routes["/my%20photo.png"] = Route(body=PNG, content_type="image/png")
    session = connected_session(alice)
    response = alice.http.post("/v1/messages/image", json={
        "sessionId": session["id"], "to": "14155550123",
        "url": f"http://127.0.0.1:{server.port}/my photo.png"})
    assert response.status_code == 201, response.text
    assert [hit.path for hit in server.hits] == ["/my%20photo.png"]
