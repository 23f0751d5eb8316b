"""Media sends: the probe at acceptance (reachability, type, size) and the worker's download
with the same caps. A local server plays the customer's file host."""

import pytest

from messaging.models import Message
from tests.conftest import assert_error, connected_session
from tests.support.http_server import JPEG, MP3, MP4, PDF, PNG, LocalServer, Route
from tests.support.servers import free_port
from tests.support.worker import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

MB = 1024 * 1024


@pytest.fixture
def files(settings):
    settings.ALLOW_PRIVATE_URLS = True  # the file host is on loopback
    with LocalServer() as server:
        server.routes.update({
            "/photo.png": Route(body=PNG, content_type="image/png"),
            "/photo.jpg": Route(body=JPEG, content_type="application/octet-stream"),
            "/report.pdf": Route(body=PDF, content_type="application/pdf"),
            "/notes.txt": Route(body=b"plain words\n", content_type="text/plain; charset=utf-8"),
            "/clip.mp4": Route(body=MP4, content_type="video/mp4"),
            "/song.mp3": Route(body=MP3, content_type="audio/mpeg"),
            "/page.html": Route(body=b"<html><body>hi</body></html>", content_type="image/png"),
            "/binary.txt": Route(body=b"abc\x00\x01def", content_type="text/plain"),
            "/huge.png": Route(body=PNG, content_type="image/png",
                               declared_length=6 * MB),
        })
        yield server


@pytest.fixture
def session(alice) -> dict:
    return connected_session(alice)


def send(alice, session, kind, url, **extra):
    return alice.http.post(f"/v1/messages/{kind}", json={
        "sessionId": session["id"], "to": "14155550123", "url": url, **extra})


@pytest.mark.parametrize(("kind", "path", "mime"), [
    ("image", "/photo.png", "image/png"),
    ("image", "/photo.jpg", "image/jpeg"),
    ("document", "/report.pdf", "application/pdf"),
    ("document", "/notes.txt", "text/plain"),
    ("video", "/clip.mp4", "video/mp4"),
    ("audio", "/song.mp3", "audio/mpeg"),
])
def test_allowed_media_is_accepted(alice, session, files, kind, path, mime):
    response = send(alice, session, kind, files.url(path), caption="see")
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["type"] == kind and data["status"] == "queued" and data["text"] is None
    assert data["media"]["mimeType"] == mime
    assert data["media"]["url"] == files.url(path)
    assert data["media"]["caption"] == "see"
    assert files.hits_for(path)[0].headers.get("Range") == "bytes=0-4095"


def test_a_document_gets_its_filename_from_the_url_unless_given(alice, session, files):
    first = send(alice, session, "document", files.url("/report.pdf")).json()["data"]
    named = send(alice, session, "document", files.url("/report.pdf"),
                 filename="Q3.pdf").json()["data"]
    assert first["media"]["filename"] == "report.pdf"
    assert named["media"]["filename"] == "Q3.pdf"


@pytest.mark.parametrize(("kind", "path"), [
    ("image", "/report.pdf"), ("image", "/page.html"), ("video", "/photo.png"),
    ("audio", "/clip.mp4"), ("document", "/binary.txt"), ("document", "/song.mp3"),
])
def test_a_type_outside_the_endpoint_is_invalid_media_type(alice, session, files, kind, path):
    assert_error(send(alice, session, kind, files.url(path)), 400, "invalid_media_type", "url")
    assert not Message.objects.exists()


def test_a_size_in_other_digits_is_taken_as_unknown_not_a_crash(alice, session, files):
    """`Content-Range: bytes 0-N/²`: "²".isdigit() is true, int("²") is not a number."""
    files.routes["/odd.png"] = Route(body=PNG, content_type="image/png", status=206,
                                     honour_range=False,
                                     headers={"Content-Range": f"bytes 0-{len(PNG) - 1}/\u00b2"})
    response = send(alice, session, "image", files.url("/odd.png"))
    assert response.status_code == 201, response.text


def test_over_the_size_limit_is_media_size_exceeded(alice, session, files):
    error = assert_error(send(alice, session, "image", files.url("/huge.png")), 400,
                         "media_size_exceeded", "url")
    assert str(5 * MB) in error["details"]["reason"]


@pytest.mark.parametrize("url", ["/missing.png", "ftp://127.0.0.1/a.png", "closed-port",
                                 "not a url"])
def test_an_unreachable_url_is_media_url_inaccessible(alice, session, files, url):
    if url == "closed-port":
        url = f"http://127.0.0.1:{free_port()}/a.png"
    elif url.startswith("/"):
        url = files.url(url)
    assert_error(send(alice, session, "image", url), 400, "media_url_inaccessible", "url")


@pytest.mark.parametrize("drip", [0.25, 0.02], ids=["in-the-head", "in-the-body"])
def test_a_file_host_that_drips_its_answer_is_cut_off_at_the_deadline(alice, session, files,
                                                                     drip):
    # Each byte comes well within a read's timeout; at 0.02 s a byte the head arrives within
    # the probe's 5 s and the 4 KB it reads do not.
    files.routes["/drip.png"] = Route(body=PNG * 60, content_type="image/png", drip=drip)
    error = assert_error(send(alice, session, "image", files.url("/drip.png")), 400,
                         "media_url_inaccessible", "url")
    assert "in time" in error["details"]["reason"]


def test_private_urls_are_refused_unless_allowed(alice, session, files, settings):
    settings.ALLOW_PRIVATE_URLS = False
    error = assert_error(send(alice, session, "image", files.url("/photo.png")), 400,
                         "media_url_inaccessible", "url")
    assert "loopback" in error["details"]["reason"]


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"url": None}, "invalid_parameter_type", "url"),
    ({"caption": "x" * 1025}, "message_too_long", "caption"),
    ({"filename": 7}, "invalid_parameter_type", "filename"),
])
def test_bad_media_bodies(alice, session, files, body, code, field):
    payload = {"sessionId": session["id"], "to": "14155550123",
               "url": files.url("/photo.png"), **body}
    assert_error(alice.http.post("/v1/messages/image", json=payload), 400, code, field)


def test_a_missing_url_is_missing_required_parameter(alice, session):
    response = alice.http.post("/v1/messages/image",
                               json={"sessionId": session["id"], "to": "14155550123"})
    assert_error(response, 400, "missing_required_parameter", "url")


# --- through the worker --------------------------------------------------------------------


def test_an_image_goes_sent_delivered_read(alice, files, celery_worker):
    session = connected_session(alice)
    message = send(alice, session, "image", files.url("/photo.png")).json()["data"]
    wait_until(lambda: Message.objects.get(pk=message["id"]).status == "read")
    assert any(hit.headers.get("Range") is None for hit in files.hits_for("/photo.png"))


def test_a_server_lying_about_the_size_is_cut_off_at_the_cap(alice, files, celery_worker):
    # Ignores Range, sends no length: the probe sees a PNG of unknown size and accepts it.
    files.routes["/endless.png"] = Route(body=PNG + b"\x00" * (6 * MB), content_type="image/png",
                                         honour_range=False, send_length=False)
    session = connected_session(alice)
    message = send(alice, session, "image", files.url("/endless.png")).json()["data"]
    failed = wait_until(lambda: (m := Message.objects.get(pk=message["id"])).status == "failed"
                        and m)
    assert failed.error_code == "media_size_exceeded"


def test_a_file_that_changed_after_acceptance_fails_the_message(alice, files, celery_worker):
    from datetime import timedelta

    from django.utils import timezone

    from messaging.services import schedule_session_sender
    from sessions_app.models import Session

    files.routes["/changing.png"] = Route(body=PNG, content_type="image/png")
    session = connected_session(alice)
    # The test holds the session's sender lease, so the message waits in the queue.
    held = Session.objects.filter(pk=session["id"])
    held.update(sender_lease_owner="test",
                sender_lease_until=timezone.now() + timedelta(seconds=60))
    message = send(alice, session, "image", files.url("/changing.png")).json()["data"]
    files.routes["/changing.png"] = Route(body=PDF, content_type="image/png")
    held.update(sender_lease_owner="", sender_lease_until=None)
    schedule_session_sender(session["id"], dedupe=False)
    failed = wait_until(lambda: (m := Message.objects.get(pk=message["id"])).status == "failed"
                        and m)
    assert failed.error_code == "invalid_media_type"
