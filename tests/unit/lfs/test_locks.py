import pytest

from gitd.errors import Forbidden, NotFound, Unprocessable
from gitd.lfs.locks import LockConflict, Locks, normalise_path


@pytest.mark.parametrize("raw, expected", [
    ("a.bin", "a.bin"), ("./dir//a.bin", "dir/a.bin"), ("/dir/./a.bin", "dir/a.bin"), ("Dir/A.BIN", "Dir/A.BIN"),
])
def test_paths_are_normalised(raw, expected):
    assert normalise_path(raw) == expected


@pytest.mark.parametrize("raw", ["", "  ", "/", "./", "../a", "a/../../b", "a\0b", None, 7, "x" * 5000])
def test_bad_paths_are_refused(raw):
    with pytest.raises(Unprocessable):
        normalise_path(raw)


def test_one_lock_per_normalised_path_enforced_by_the_index(world):
    locks = Locks(world.store)
    lock = locks.create(world.first.id, world.alice, "dir/a.bin", "refs/heads/main")
    with pytest.raises(LockConflict) as caught:
        locks.create(world.first.id, world.bob, "./dir//a.bin")
    assert caught.value.lock == lock and caught.value.status == 409
    assert locks.create(world.second.id, world.bob, "dir/a.bin").owner_name == "bob"  # another repository
    assert locks.create(world.first.id, world.bob, "dir/A.bin").path == "dir/A.bin"  # case-sensitive, like git


def test_listing_pages_and_filters(world):
    locks = Locks(world.store)
    made = [locks.create(world.first.id, world.alice, f"f{i}.bin") for i in range(5)]
    page, cursor = locks.list(world.first.id, limit=2)
    assert page == made[:2] and cursor
    page, cursor = locks.list(world.first.id, limit=2, cursor=cursor)
    assert page == made[2:4] and cursor
    page, cursor = locks.list(world.first.id, limit=2, cursor=cursor)
    assert page == made[4:] and cursor is None
    assert locks.list(world.first.id, path="./f3.bin") == ([made[3]], None)
    assert locks.list(world.first.id, lock_id=str(made[1].id)) == ([made[1]], None)
    assert locks.list(world.first.id, lock_id="nope") == ([], None)
    with pytest.raises(Unprocessable):
        locks.list(world.first.id, cursor="-1")
    with pytest.raises(Unprocessable):
        locks.list(world.first.id, limit="many")


def test_verify_splits_ours_and_theirs(world):
    locks = Locks(world.store)
    a = locks.create(world.first.id, world.alice, "a.bin")
    b = locks.create(world.first.id, world.bob, "b.bin")
    assert locks.verify(world.first.id, world.alice) == ([a], [b], None)
    assert locks.verify(world.first.id, world.bob) == ([b], [a], None)


def test_unlock_rules(world):
    locks = Locks(world.store)
    lock = locks.create(world.first.id, world.alice, "a.bin")
    with pytest.raises(Forbidden):
        locks.unlock(world.first.id, lock.id, world.bob)
    with pytest.raises(Forbidden):
        locks.unlock(world.first.id, lock.id, world.bob, force=True, is_admin=False)
    with pytest.raises(NotFound):
        locks.unlock(world.second.id, lock.id, world.alice)  # ids are per repository
    assert locks.unlock(world.first.id, lock.id, world.bob, force=True, is_admin=True) == lock
    with pytest.raises(NotFound):
        locks.unlock(world.first.id, lock.id, world.alice)
    mine = locks.create(world.first.id, world.bob, "a.bin")
    assert locks.unlock(world.first.id, str(mine.id), world.bob) == mine


def test_deleting_a_repository_drops_its_locks(world):
    locks = Locks(world.store)
    locks.create(world.second.id, world.alice, "a.bin")
    world.repos.delete(world.second)
    assert world.store.db.execute("SELECT count(*) FROM lfs_locks").fetchone()[0] == 0


def test_racing_lock_requests_leave_exactly_one_lock(world):
    from concurrent.futures import ThreadPoolExecutor

    locks = Locks(world.store)

    def attempt(account):
        try:
            return locks.create(world.first.id, account, "contended.bin")
        except LockConflict as exc:
            return exc

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, [world.alice, world.bob] * 8))
    won = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(won) == 1
    assert all(o.lock == won[0] for o in outcomes if isinstance(o, LockConflict))


def test_regression_lock_ids_and_cursors_beyond_sqlite_integers_are_answered(world):
    # Binding a number over 2**63 - 1 raised OverflowError (a 500 over HTTP, a dead SSH session).
    locks = Locks(world.store)
    locks.create(world.first.id, world.alice, "a.bin")
    for big in (2**63, "9" * 30, -(2**63) - 1):
        assert locks.list(world.first.id, lock_id=big) == ([], None)
        with pytest.raises(Unprocessable):
            locks.list(world.first.id, cursor=big)
        with pytest.raises(NotFound):
            locks.unlock(world.first.id, big, world.alice)


@pytest.mark.parametrize("path, ref", [("\ud800.bin", None), ("a.bin", "refs/heads/\udc80")])
def test_regression_lock_path_or_ref_with_a_lone_surrogate_is_unprocessable(world, path, ref):
    # JSON bodies can carry lone surrogates; binding one raised UnicodeEncodeError.
    with pytest.raises(Unprocessable):
        Locks(world.store).create(world.first.id, world.alice, path, ref)
