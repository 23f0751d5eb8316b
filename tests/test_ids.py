"""Ids sort in the order they were made, even within one millisecond, and stay unique."""

import os

from config import ids


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
