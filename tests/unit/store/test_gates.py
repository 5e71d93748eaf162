"""Repository gates as Access asks them on every read: held in memory, a change made through the
same object seen at once, one made by another process (another RepoGates) within ``ttl``."""

from __future__ import annotations

import time

from gitd.store import Store
from gitd.store.gates import RepoGates


def test_gate_changes_are_seen_at_once_here_and_within_the_ttl_elsewhere(tmp_path):
    store = Store(tmp_path / "gitd.db")
    store.migrate()
    store.db.execute("INSERT INTO accounts (name, kind, created_at) VALUES ('alice', 'user', 'now')")
    store.db.execute("INSERT INTO repos (owner_id, name, type, created_at, updated_at) VALUES (1, 'm', 'model', "
                     "'now', 'now')")
    here, elsewhere = RepoGates(store, ttl=0.2), RepoGates(store, ttl=0.2)
    assert here.mode(1) is None and elsewhere.mode(1) is None
    here.set_mode(1, "manual")
    assert here.mode(1) == "manual"
    assert elsewhere.mode(1) is None  # its copy is younger than the ttl
    time.sleep(0.25)
    assert elsewhere.mode(1) == "manual"
    here.set_mode(1, None)
    assert here.mode(1) is None
    assert here.put(1, 1, "accepted").status == "accepted" and here.granted(1, 1)
    assert here.put(1, 1, "rejected", rejection_reason="no").rejection_reason == "no" and not here.granted(1, 1)
