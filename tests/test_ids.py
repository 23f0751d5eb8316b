"""Ids sort in the order they were made, even within one millisecond, and stay unique."""

import os

from infra import ids


def test_ids_made_in_one_process_sort_in_creation_order(monkeypatch):
    monkeypatch.setattr(ids.time, "time", lambda: 1_800_000_000.0)  # one frozen millisecond
    made = [ids.new_id("evt") for _ in range(10_000)]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(len(value) == len("evt_") + 26 for value in made)


def test_a_forked_child_does_not_continue_its_parents_sequence(monkeypatch):
    monkeypatch.setattr(ids.time, "time", lambda: 1_800_000_000.0)
    ids.new_id("evt")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its first id, then leave at once
        os.write(write, ids.new_id("evt").encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child_id = os.read(read, 100).decode()
    parent_next = ids.new_id("evt")
    assert child_id != parent_next  # with a shared sequence both would be "last + 1"


def _digits(value: int, length: int) -> str:
    """The id's encoding spelled out, a digit at a time: Crockford base32, most significant
    first."""
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append("0123456789ABCDEFGHJKMNPQRSTVWXYZ"[rem])
    return "".join(reversed(chars))


def test_the_encoding_is_crockford_base32_of_time_then_random_part(monkeypatch):
    import random

    generator = random.Random(7)
    cases = [(0, 0), (1, 1), (2**50 - 1, 2**79 - 1), (1_800_000_000_123, 2**79 - 2)]
    cases += [(generator.getrandbits(50), generator.getrandbits(79)) for _ in range(2000)]
    for millis, random_part in cases:
        monkeypatch.setattr(ids, "_last", [-1, 0])  # a new millisecond
        monkeypatch.setattr(ids.time, "time", lambda millis=millis: (millis + 0.5) / 1000)
        monkeypatch.setattr(ids.secrets, "randbits", lambda bits, value=random_part: value)
        assert ids.new_id("evt") == f"evt_{_digits(millis, 10)}{_digits(random_part, 16)}"


def test_the_floor_of_a_moment_splits_ids_made_before_it_from_ids_made_after(monkeypatch):
    from datetime import UTC, datetime

    monkeypatch.setattr(ids, "_last", [0, 0])  # leave the process's sequence as it was
    moment = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)
    made = {}
    for label, seconds in [("before", -0.001), ("at", 0.0), ("after", 0.001)]:
        monkeypatch.setattr(ids.time, "time", lambda s=seconds: moment.timestamp() + s)
        made[label] = ids.new_id("msg")
    floor = ids.id_floor("msg", moment)
    assert made["before"] < floor <= made["at"] < made["after"]
