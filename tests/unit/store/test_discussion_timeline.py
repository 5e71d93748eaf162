"""Regression: a discussion's comments and status/title changes keep the order they happened
in, even when they share a millisecond timestamp (the Hub's timeline was sorted by
``createdAt`` and then by the event id string, so a same-millisecond comment and title
change could swap). One sequence per discussion, kept by triggers, orders both."""

from __future__ import annotations

import gitd.store.comments
import gitd.store.db
import gitd.store.discussion_events
from gitd.store import Store
from gitd.store.comments import Comments
from gitd.store.discussion_events import DiscussionEvents
from gitd.store.discussions import Discussions
from gitd.store.migrations import MIGRATIONS

SAME_MS = "2026-01-01T00:00:00.000Z"


def _store(tmp_path) -> Store:
    store = Store(tmp_path / "gitd.db")
    store.migrate()
    store.db.execute("INSERT INTO accounts (name, kind, created_at) VALUES ('alice', 'user', 'now')")
    store.db.execute("INSERT INTO repos (owner_id, name, type, created_at, updated_at) VALUES (1, 'm', 'model', "
                     "'now', 'now')")
    return store


def _timeline(comments: Comments, events: DiscussionEvents, discussion_id: int) -> list[str]:
    both = [(c.seq, f"comment:{c.body}") for c in comments.of(discussion_id)]
    both += [(e.seq, f"{e.kind}:{e.data['new']}") for e in events.of(discussion_id)]
    return [what for _, what in sorted(both)]


def test_discussion_timeline_keeps_insertion_order_within_one_millisecond(tmp_path, monkeypatch):
    monkeypatch.setattr(gitd.store.comments, "utcnow", lambda: SAME_MS)
    monkeypatch.setattr(gitd.store.discussion_events, "utcnow", lambda: SAME_MS)
    store = _store(tmp_path)
    discussions, comments, events = Discussions(store), Comments(store), DiscussionEvents(store)
    one = discussions.create(1, "t", "d", 1, pull_request=False)
    two = discussions.create(1, "u", "d", 1, pull_request=False)
    # Event ids run ahead of comment ids here (another discussion's events come first), so
    # neither the timestamps nor the ids alone give the order.
    for n in range(5):
        events.add(two.id, "title-change", 1, {"old": "u", "new": f"x{n}"})
    expected = []
    for n in range(3):
        expected.append(f"comment:c{n}")
        assert comments.add(one.id, 1, f"c{n}").seq == 2 * n + 1
        expected.append(f"title-change:t{n}")
        assert events.add(one.id, "title-change", 1, {"old": "t", "new": f"t{n}"}).seq == 2 * n + 2
    assert _timeline(comments, events, one.id) == expected
    assert _timeline(comments, events, two.id) == [f"title-change:x{n}" for n in range(5)]  # its own sequence


def test_discussion_timeline_migration_orders_existing_rows_by_time(tmp_path, monkeypatch):
    """A database from before the sequence: its rows are numbered by time (comments before
    changes on a tie), and new rows follow them."""
    monkeypatch.setattr(gitd.store.db, "MIGRATIONS", [m for m in MIGRATIONS if m[0] < 13])
    store = _store(tmp_path)
    discussions = Discussions(store)
    d = discussions.create(1, "t", "d", 1, pull_request=False)
    for table, body, at in (("discussion_events", None, "2026-01-01T00:00:02.000Z"),
                            ("discussion_comments", "first", "2026-01-01T00:00:01.000Z"),
                            ("discussion_comments", "tie", "2026-01-01T00:00:02.000Z")):
        if table == "discussion_events":
            store.db.execute("INSERT INTO discussion_events (discussion_id, kind, author_id, data, created_at) "
                             "VALUES (?, 'title-change', 1, '{\"old\": \"t\", \"new\": \"n\"}', ?)", [d.id, at])
        else:
            store.db.execute("INSERT INTO discussion_comments (discussion_id, author_id, body, created_at) "
                             "VALUES (?, 1, ?, ?)", [d.id, body, at])
    monkeypatch.setattr(gitd.store.db, "MIGRATIONS", MIGRATIONS)
    assert store.migrate() == 13
    comments, events = Comments(store), DiscussionEvents(store)
    comments.add(d.id, 1, "later")
    assert _timeline(comments, events, d.id) == ["comment:first", "comment:tie", "title-change:n", "comment:later"]
