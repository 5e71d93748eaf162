"""The batch request's checks (gitd.lfs.batch), over LfsService with a size limit."""

from __future__ import annotations

import pytest

from gitd.errors import Unprocessable
from gitd.lfs.batch import TooManyObjects, check_batch_objects, parse_batch
from gitd.lfs.locks import Locks
from gitd.lfs.objects import ObjectTable
from gitd.lfs.service import LfsService
from gitd.lfs.storage.local import LocalStorage
from gitd.lfs.streams import is_oid

OID = "ab" * 32


@pytest.fixture
def lfs(world, tmp_path):
    return LfsService(ObjectTable(world.store), LocalStorage(tmp_path / "lfs"), Locks(world.store),
                      max_object_size=1000)


def test_a_batch_request_is_checked_object_by_object(lfs):
    batch = parse_batch({"operation": "upload", "transfers": ["basic", "multipart"], "ref": {"name": "main"},
                         "objects": [{"oid": OID, "size": 10}, {"oid": "x", "size": 1}, {"oid": OID, "size": 1001},
                                     "junk"]}, max_objects=10)
    checked = check_batch_objects(lfs, batch)
    assert checked[0] == (OID, 10)
    assert [entry["error"]["code"] for entry in checked[1:]] == [422, 422, 422]  # type: ignore[index]
    assert "limit" in checked[2]["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize("body", [{"operation": "delete", "objects": []}, {"operation": "upload"},
                                  {"operation": "upload", "objects": [], "transfers": ["ssh"]},
                                  {"operation": "upload", "objects": [], "ref": "main"}])
def test_malformed_batch_requests_are_unprocessable(body):
    with pytest.raises(Unprocessable):
        parse_batch(body, max_objects=10)


def test_too_many_objects_is_413():
    with pytest.raises(TooManyObjects):
        parse_batch({"operation": "download", "objects": [{}] * 11}, max_objects=10)


def test_regression_an_oid_with_a_trailing_newline_is_not_an_oid(lfs):
    # The oid pattern ended in '$', which also matches before a final newline.
    assert not is_oid(OID + "\n")
    checked = check_batch_objects(lfs, parse_batch({"operation": "download", "objects": [
        {"oid": OID + "\n", "size": 1}]}, max_objects=10))
    assert checked[0]["error"]["code"] == 422  # type: ignore[index]


def test_regression_a_size_too_large_for_a_float_gets_its_own_error_entry(lfs):
    # The over-the-limit message formatted the size as a float: OverflowError (a 500 for the batch).
    checked = check_batch_objects(lfs, parse_batch({"operation": "upload", "objects": [
        {"oid": OID, "size": 10**400}, {"oid": OID, "size": 2**64}]}, max_objects=10))
    assert [entry["error"]["code"] for entry in checked] == [422, 422]  # type: ignore[index]
    assert all(len(entry["error"]["message"]) < 200 for entry in checked)  # type: ignore[index]


def test_regression_an_unsupported_hash_algo_is_quoted_cut_short(lfs):
    checked = check_batch_objects(lfs, parse_batch({"operation": "upload", "hash_algo": ["x" * 10_000],
                                                    "objects": [{"oid": OID, "size": 1}]}, max_objects=10))
    assert checked[0]["error"]["code"] == 409 and len(checked[0]["error"]["message"]) < 200  # type: ignore[index]
