"""The real engine's recovery, through real processes: engine hosts (`run_engine`'s supervisor,
each a process of its own) running the production child process around a fake WhatsApp,
events applied by a real Celery worker's consumer. Faults are injected from outside (network
drops, dials that fail or hang, WhatsApp's and the phone's decisions, `kill -9` of a child or
of a host, a Redis restart) and each test asserts the sessions' final statuses, that no
message was sent twice or lost, and that no process is left behind."""

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from infra.redis import redis_client
from sessions_app.engines import publish_event
from sessions_app.engines.base import EngineUnavailable, SendRejected
from sessions_app.engines.whatsmeow import protocol
from sessions_app.engines.whatsmeow.remote import RemoteEngine
from sessions_app.models import Session
from tests.support.chaos_whatsapp import chaos_key
from tests.support.servers import ROOT, database_url_of_test_db, free_port, stop_process_group
from tests.support.worker import wait_until

pytestmark = [pytest.mark.subprocess, pytest.mark.django_db(transaction=True)]

ARTIFACTS = ROOT / "test-artifacts" / "chaos"


def alive(pid: int) -> bool:
    """Running (a dead process whose parent died may stay a zombie where nothing reaps it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def processes_in_group(pgid: int) -> list[int]:
    """Live processes of a process group (a host and its children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def children_of(pid: int) -> list[int]:
    """The session processes a host runs (not multiprocessing's resource tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        for child in children:
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in command:
                found.append(int(child))
    return found


class Hosts:
    """Engine hosts started as processes, all stopped (with their children) at the end."""

    def __init__(self, settings, queue: str) -> None:
        self.settings, self.queue = settings, queue
        self.processes: dict[str, subprocess.Popen] = {}
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def start(self, worker_id: str, *, max_sessions: int = 0,
              redis_url: str | None = None) -> subprocess.Popen:
        env = {**os.environ, "DATABASE_URL": database_url_of_test_db(),
               "REDIS_URL": redis_url or self.settings.REDIS_URL,
               "REDIS_NAMESPACE": self.settings.REDIS_NAMESPACE, "CELERY_QUEUE": self.queue,
               # The media storage the web and Celery processes share with engine hosts.
               "DATA_DIR": str(self.settings.DATA_DIR)}
        log = open(ARTIFACTS / f"{worker_id}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.chaos_supervisor", worker_id,
             str(max_sessions)], cwd=ROOT, env=env, start_new_session=True, stdout=log,
            stderr=log)
        self.processes[worker_id] = process
        return process

    def stop_all(self) -> None:
        for process in self.processes.values():
            stop_process_group(process, grace=10)


@pytest.fixture
def hosts(settings, celery_worker):
    from config.celery import app

    started = Hosts(settings, app.conf.task_default_queue)
    yield started
    started.stop_all()
    for process in started.processes.values():  # nothing outlives its host
        wait_until(lambda pid=process.pid: not processes_in_group(pid), timeout=10)


@pytest.fixture
def linked(alice):
    """Sessions linked to phones before: each has a stored login, none runs yet."""

    def make(count: int) -> list[str]:
        ids = []
        for n in range(count):
            phone = f"1415555{n:04d}"
            session = Session.objects.create(
                account=alice.account, engine="whatsmeow", status="connected",
                phone_number=phone, engine_device=f"{phone}:7@s.whatsapp.net")
            ids.append(session.id)
        return ids

    return make


def status(session_id: str) -> tuple[str, str]:
    session = Session.objects.get(pk=session_id)
    return session.status, session.last_error_code


def connected_again(session_ids: list[str], since: float, timeout: float = 30) -> None:
    """Each session connected by a process started after `since` (an epoch time)."""
    def done() -> bool:
        for session in Session.objects.filter(pk__in=session_ids):
            if session.status != "connected" or session.connected_at is None or (
                    session.connected_at.timestamp() < since):
                return False
        return True

    wait_until(done, timeout=timeout)


def fault(settings, session_id: str, kind: str) -> None:
    redis_client().rpush(chaos_key(settings.REDIS_NAMESPACE, session_id, "faults"), kind)


def whatsapp_record(settings, session_id: str) -> list[str]:
    key = chaos_key(settings.REDIS_NAMESPACE, session_id, "whatsapp")
    return [item.decode() for item in redis_client().lrange(key, 0, -1)]


def owner(settings, session_id: str) -> str | None:
    value = redis_client().get(protocol.lease_key(settings.REDIS_NAMESPACE, session_id))
    return value.decode().rsplit(":", 1)[0] if value else None


def test_a_dropped_connection_comes_back_by_itself_and_an_offline_one_when_online(
        hosts, linked, settings):
    (session_id,) = linked(1)
    started = time.time()
    hosts.start("host-a")
    connected_again([session_id], started)
    dropped = time.time()
    fault(settings, session_id, "drop")
    wait_until(lambda: status(session_id) == ("disconnected", "connection_lost"))
    connected_again([session_id], dropped)
    # Offline: every dial fails, with backoff, until the network is back.
    offline = chaos_key(settings.REDIS_NAMESPACE, session_id, "offline")
    redis_client().set(offline, 1)
    wait_until(lambda: status(session_id) == ("disconnected", "connection_lost")
               and Session.objects.get(pk=session_id).reconnect_at is not None)
    assert Session.objects.get(pk=session_id).last_error.startswith("The connection")
    time.sleep(3)  # a few failed dials
    assert status(session_id)[0] == "disconnected"
    back = time.time()
    redis_client().delete(offline)
    connected_again([session_id], back)
    assert Session.objects.get(pk=session_id).reconnect_at is None


def test_a_dial_that_hangs_is_abandoned_and_tried_again(hosts, linked, settings):
    (session_id,) = linked(1)
    hang = chaos_key(settings.REDIS_NAMESPACE, session_id, "hang")
    redis_client().set(hang, 1)
    hosts.start("host-a")
    host = hosts.processes["host-a"]
    first = wait_until(lambda: children_of(host.pid))
    # The supervisor gives a silent dial 3 s (chaos timing), then starts a new process.
    wait_until(lambda: children_of(host.pid) and children_of(host.pid) != first, timeout=15)
    assert status(session_id)[0] == "disconnected"
    back = time.time()
    redis_client().delete(hang)
    connected_again([session_id], back)


@pytest.mark.parametrize("kind, final", [
    ("stream_replaced", ("failed", "stream_replaced")),
    ("banned", ("failed", "temporarily_banned")),
    ("logged_out", ("logged_out", "logged_out_by_phone")),
])
def test_whatsapps_and_the_phones_decisions_end_the_session_and_its_process(
        hosts, linked, settings, kind, final):
    (session_id,) = linked(1)
    started = time.time()
    host = hosts.start("host-a")
    connected_again([session_id], started)
    fault(settings, session_id, kind)
    wait_until(lambda: status(session_id) == final)
    wait_until(lambda: not children_of(host.pid), timeout=10)  # its process stopped at once
    wait_until(lambda: owner(settings, session_id) is None, timeout=10)  # and its lease freed
    time.sleep(2)  # several scans: nothing restarts it
    assert not children_of(host.pid) and status(session_id) == final


def test_events_wake_the_consumer_as_they_are_published(linked, settings, tmp_path):
    """The session process's events and the host's own make the host wake the consumer (a
    Celery task) at once, rather than leave them for a periodic run."""
    from sessions_app.engines.whatsmeow.supervisor import EngineSupervisor
    from tests.support.chaos_whatsapp import chaos_child

    (session_id,) = linked(1)
    wakes = []
    supervisor = EngineSupervisor(
        redis_client=redis_client(), namespace=settings.REDIS_NAMESPACE,
        stream=f"{settings.REDIS_NAMESPACE}:engine-events", redis_url=settings.REDIS_URL,
        store_dir=tmp_path, child_target=chaos_child, wake=lambda: wakes.append(time.time()))
    device = Session.objects.get(pk=session_id).engine_device
    supervisor.handle(protocol.command("start", session_id, {"device": device}).encode())
    try:
        wait_until(lambda: supervisor.children[session_id].state == "connected", timeout=20)
        wait_until(lambda: wakes)  # the child's `connected` event
        count = len(wakes)
        fault(settings, session_id, "drop")
        supervisor.children[session_id].process.join(10)
        supervisor.check_children()  # the host's own `disconnected`, with reconnectAt
        assert len(wakes) > count
    finally:
        for sid in list(supervisor.children):
            supervisor._stop_child(sid)


def send_all(engine: RemoteEngine, session_id: str, message_ids: list[str],
             outcomes: dict[str, str]) -> None:
    """Send each message as the sender does: an unavailable engine is retried, the same
    message id each time; a refusal settles it."""
    for message_id in message_ids:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                engine.send_text(session_id, message_id=message_id, to="14155550123",
                                 text=message_id)
                outcomes[message_id] = "sent"
                break
            except SendRejected:
                outcomes[message_id] = "rejected"
                break
            except EngineUnavailable:
                time.sleep(0.2)


def test_a_child_killed_mid_send_neither_loses_nor_duplicates_a_message(hosts, linked,
                                                                       settings):
    (session_id,) = linked(1)
    started = time.time()
    host = hosts.start("host-a")
    connected_again([session_id], started)
    message_ids = [f"msg_{uuid.uuid4().hex[:12]}" for _ in range(60)]
    outcomes: dict[str, str] = {}
    sender = threading.Thread(target=send_all,
                              args=(RemoteEngine(publish_event), session_id, message_ids,
                                    outcomes))
    sender.start()
    wait_until(lambda: len(outcomes) >= 10)
    killed_at = time.time()
    for pid in children_of(host.pid):
        os.kill(pid, signal.SIGKILL)
    sender.join(120)
    record = whatsapp_record(settings, session_id)
    assert all(record.count(m) <= 1 for m in message_ids), "a message reached WhatsApp twice"
    assert len(outcomes) == len(message_ids), "a message was left unsettled"
    # Every message reported sent is on WhatsApp; one the kill caught between WhatsApp and
    # the ledger is refused rather than sent again.
    assert all(m in record for m, outcome in outcomes.items() if outcome == "sent")
    assert list(outcomes.values()).count("rejected") <= 1
    connected_again([session_id], killed_at)


def test_a_host_killed_leaves_no_process_and_its_sessions_move_to_the_other(hosts, linked,
                                                                           settings, anon):
    started = time.time()
    first = hosts.start("host-a", max_sessions=4)
    hosts.start("host-b", max_sessions=4)
    wait_until(lambda: len(protocol.engine_hosts(redis_client(), settings.REDIS_NAMESPACE)) == 2,
               timeout=30)
    session_ids = linked(4)  # to two hosts that both run nothing yet
    connected_again(session_ids, started)
    owners = [owner(settings, sid) for sid in session_ids]
    assert sorted(owners) == ["host-a"] * 2 + ["host-b"] * 2  # in balance
    settings.WHATSAPP_ENGINE = "whatsmeow"  # as the web processes of this deployment see it
    health = anon.get("/v1/health").json()["data"]
    assert (health["status"], health["engineHosts"]["alive"],
            health["engineHosts"]["sessionsOwned"], health["engineHosts"]["capacityLeft"]) == (
        "ok", 2, 4, 4)
    assert [(h["worker"], h["sessions"]) for h in health["engineHosts"]["hosts"]] == [
        ("host-a", 2), ("host-b", 2)]
    first_children = children_of(first.pid)
    # Messages go to one of the doomed host's sessions through the host's death.
    target = owners.index("host-a")
    message_ids = [f"msg_{uuid.uuid4().hex[:12]}" for _ in range(30)]
    outcomes: dict[str, str] = {}
    sender = threading.Thread(target=send_all, args=(
        RemoteEngine(publish_event), session_ids[target], message_ids, outcomes))
    sender.start()
    wait_until(lambda: len(outcomes) >= 5)
    killed = time.time()
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    # Its children die with it (no orphan keeps a login open)...
    wait_until(lambda: not processes_in_group(first.pid), timeout=10)
    assert first_children and not any(alive(pid) for pid in first_children)
    # ...and the other host resumes its sessions once their leases expire.
    moved = [sid for sid, was in zip(session_ids, owners, strict=True) if was == "host-a"]
    connected_again(moved, killed, timeout=30)
    assert {owner(settings, sid) for sid in session_ids} == {"host-b"}
    stayed = Session.objects.filter(pk__in=set(session_ids) - set(moved))
    assert all(s.connected_at.timestamp() < killed for s in stayed)  # never interrupted
    sender.join(120)
    record = whatsapp_record(settings, session_ids[target])
    assert all(record.count(m) <= 1 for m in message_ids), "a message reached WhatsApp twice"
    assert len(outcomes) == len(message_ids), "a message was left unsettled"
    assert all(m in record for m, outcome in outcomes.items() if outcome == "sent")
    assert list(outcomes.values()).count("rejected") <= 1
    settings.METRICS_TOKEN = "scrape-secret"
    metrics = anon.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).text
    assert "wa_engine_hosts_alive 1.0" in metrics and "wa_engine_sessions_owned 4.0" in metrics


def test_a_restart_reaches_the_host_that_runs_the_session(hosts, linked, settings):
    """A start lands on whichever host pops it; the one that owns the session gets it and
    replaces the session's process (a reset is never dropped while an old process runs)."""
    session_ids = linked(2)
    started = time.time()
    hosts.start("host-a", max_sessions=1)
    hosts.start("host-b", max_sessions=1)
    connected_again(session_ids, started)
    for session_id in session_ids:
        host = hosts.processes[owner(settings, session_id)]
        before = children_of(host.pid)
        restarted = time.time()
        device = Session.objects.get(pk=session_id).engine_device
        RemoteEngine(publish_event).start(session_id, device=device)
        connected_again([session_id], restarted)
        assert children_of(host.pid) != before  # a new process, on the same host


def test_media_goes_by_a_file_the_hosts_share_not_through_redis(hosts, linked, settings):
    from django.core.files.storage import default_storage

    (session_id,) = linked(1)
    started = time.time()
    hosts.start("host-a")
    connected_again([session_id], started)
    engine = RemoteEngine(publish_event)
    sent = engine.send_media(session_id, message_id="msg_media1", to="14155550123",
                             kind="image", data=b"\x89PNG\r\n\x1a\n" + b"0" * 2_000_000,
                             mime_type="image/png", filename="a.png", caption="look")
    assert sent.whatsapp_id and whatsapp_record(settings, session_id) == ["media"]
    assert not default_storage.exists(f"outbound/{session_id}/msg_media1")  # cleaned up


def test_new_sessions_are_spread_over_the_hosts(hosts, alice, settings):
    hosts.start("host-a")
    hosts.start("host-b")
    wait_until(lambda: len(protocol.engine_hosts(redis_client(), settings.REDIS_NAMESPACE)) == 2,
               timeout=30)
    ids = [Session.objects.create(account=alice.account, engine="whatsmeow").id
           for _ in range(4)]
    engine = RemoteEngine(publish_event)
    for session_id in ids:
        engine.start(session_id)  # a new login: a QR code follows
    wait_until(lambda: all(status(sid)[0] == "qr_pending" for sid in ids), timeout=30)
    assert sorted(owner(settings, sid) for sid in ids) == ["host-a"] * 2 + ["host-b"] * 2


def test_a_host_at_capacity_leaves_the_rest_to_others(hosts, linked, settings):
    session_ids = linked(3)
    started = time.time()
    hosts.start("host-a", max_sessions=2)
    wait_until(lambda: sum(owner(settings, sid) == "host-a" for sid in session_ids) == 2,
               timeout=30)
    time.sleep(2)
    assert sorted(filter(None, (owner(settings, sid) for sid in session_ids))) == ["host-a"] * 2
    hosts.start("host-b", max_sessions=2)
    connected_again(session_ids, started)


def test_a_redis_restart_stops_and_resumes_the_sessions(settings, linked, alice, tmp_path):
    """Redis (with its append-only file, as production runs it) goes away longer than a lease:
    the host stops its sessions before anyone else could take them, and resumes them when it
    is back. Events are applied here, from that Redis."""
    from sessions_app.event_consumer import engine_events_drain

    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "yes", "--dir", str(tmp_path)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    settings.REDIS_URL = url
    def answering() -> bool:
        try:
            return redis_client().ping()
        except Exception:  # not listening yet
            return False

    wait_until(answering, timeout=10)
    hosts = Hosts(settings, "unused")
    session_ids = linked(2)
    try:
        host = hosts.start("host-a", redis_url=url)

        def applied_and(check):
            def condition():
                try:
                    engine_events_drain()
                except Exception:  # Redis away: nothing to apply now
                    return False
                return check()
            return condition

        wait_until(applied_and(lambda: all(
            Session.objects.get(pk=sid).status == "connected"
            and Session.objects.get(pk=sid).connected_at is not None
            for sid in session_ids)), timeout=30)
        server.kill()
        server.wait(10)
        # The lease cannot be renewed: its children are stopped before it could expire.
        wait_until(lambda: not children_of(host.pid), timeout=10)
        back = time.time()
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_until(applied_and(lambda: all(
            Session.objects.get(pk=sid).status == "connected"
            and Session.objects.get(pk=sid).connected_at.timestamp() > back
            for sid in session_ids)), timeout=40)
        assert host.poll() is None, "the engine host died with Redis"
        assert len(children_of(host.pid)) == 2
    finally:
        hosts.stop_all()
        server.kill()
        server.wait(10)
