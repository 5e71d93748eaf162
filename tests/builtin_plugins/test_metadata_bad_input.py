"""Hostile and broken files: each gives a clear warning on its repository, reads a bounded
number of bytes, and the job completes; what the other files say is still derived."""

from __future__ import annotations

import struct

import pytest
from gitd_plugins.metadata import MetadataPlugin

from gitd.testing import LfsBytes
from tests.metadata_files import gguf_bytes, parquet_bytes, safetensors_bytes, tiny_llama

GOOD_CARD = "---\nlicense: mit\n---\n"


def tag_one(gitd_harness, files: dict, **settings) -> tuple[dict, dict]:
    h = gitd_harness(MetadataPlugin, name="metadata", settings=settings)
    repo = h.repo("alice/bad", files=files)
    h.run_jobs()  # raises if a job does
    assert h.jobs("failed") == [] and h.jobs("queued") == []
    return h.repo_info(repo), h.storage.kv.get(f"last-job:{repo.id}")


def warnings(info: dict) -> list[str]:
    return [f["message"] for f in info["metadataFlags"] if f["kind"] == "file"]


def test_a_safetensors_header_claiming_100_gb_of_json_is_not_read(gitd_harness):
    head = struct.pack("<Q", 100 * 10**9) + b'{"a": 1}'
    info, job = tag_one(gitd_harness, {"README.md": GOOD_CARD, "w.safetensors": LfsBytes(head + b"\0" * 64)})
    assert warnings(info) == ["w.safetensors: the safetensors header claims 100000000000 bytes of JSON, over the "
                              "limit of 16777216"]
    assert job["bytes_read"] < 20_000 + len(GOOD_CARD)
    assert "license:mit" in info["tags"] and "safetensors" not in info


@pytest.mark.parametrize(("content", "message"), [
    (struct.pack("<Q", 12) + b"not json at all", "w.safetensors: the safetensors header is not JSON"),
    (struct.pack("<Q", 4) + b"[1] ", "w.safetensors: the safetensors header is not a JSON object"),
    (struct.pack("<Q", 500) + b"{}", "w.safetensors: truncated: the safetensors header claims 500 bytes"),
    (struct.pack("<Q", 40) + b'{"t": {"dtype": "F16", "shape": [-1]}}  ', "tensor 't' in the safetensors header has "
                                                                            "no valid shape"),
    (struct.pack("<Q", 2) + b"[" * 2, "the safetensors header is not JSON"),
])
def test_corrupt_safetensors_headers(gitd_harness, content, message):
    info, _ = tag_one(gitd_harness, {"README.md": GOOD_CARD, "w.safetensors": LfsBytes(content)})
    assert len(warnings(info)) == 1 and message in warnings(info)[0]


def test_a_truncated_safetensors_file(gitd_harness):
    real = safetensors_bytes(tiny_llama())
    info, _ = tag_one(gitd_harness, {"README.md": GOOD_CARD, "a.safetensors": LfsBytes(real[:len(real) // 2]),
                                     "b.safetensors": LfsBytes(real)})
    (msg,) = warnings(info)
    assert msg.startswith("a.safetensors: truncated: tensor ")
    assert info["safetensors"]["total"] == 8 * 16 * 3 + 16  # the good file still counts


def test_a_gguf_file_with_more_metadata_keys_than_the_cap(gitd_harness):
    # real, written by gguf.GGUFWriter, with 200 keys more than the cap of 100
    info, _ = tag_one(gitd_harness, {"README.md": GOOD_CARD, "m.gguf": LfsBytes(gguf_bytes(extra_keys=200))},
                      max_gguf_keys=100)
    (msg,) = warnings(info)
    assert msg.startswith("m.gguf: the GGUF file claims ") and msg.endswith("metadata keys, over the limit of 100")


def test_a_gguf_header_claiming_a_million_keys(gitd_harness):
    data = b"GGUF" + struct.pack("<IQQ", 3, 1, 1_000_000) + struct.pack("<Q", 3) + b"abc" + struct.pack("<IB", 0, 1)
    info, job = tag_one(gitd_harness, {"README.md": GOOD_CARD, "m.gguf": LfsBytes(data)})
    assert warnings(info) == ["m.gguf: the GGUF file claims 1000000 metadata keys, over the limit of 4096"]
    assert job["bytes_read"] < 1000


@pytest.mark.parametrize(("cut", "message"), [
    (lambda d: d[:60], "m.gguf: truncated"),
    (lambda d: b"GGML" + d[4:], "m.gguf: not a GGUF file (bad magic)"),
    (lambda d: d[:4] + struct.pack("<I", 7) + d[8:], "m.gguf: GGUF version 7 is not supported"),
    (lambda d: d[:24] + struct.pack("<Q", 2**60) + d[32:], "m.gguf: a GGUF string claims"),
])
def test_corrupt_and_truncated_gguf_files(gitd_harness, cut, message):
    info, _ = tag_one(gitd_harness, {"README.md": GOOD_CARD, "m.gguf": LfsBytes(cut(gguf_bytes()))})
    (msg,) = warnings(info)
    assert msg.startswith(message), msg


def test_a_gguf_files_metadata_over_the_byte_budget(gitd_harness):
    info, job = tag_one(gitd_harness, {"README.md": GOOD_CARD, "m.gguf": LfsBytes(gguf_bytes(extra_keys=3000))},
                        max_gguf_metadata=4096)
    (msg,) = warnings(info)
    assert msg == "m.gguf: reading it needs more than 4096 bytes, the limit"
    assert job["bytes_read"] <= 4096 + len(GOOD_CARD)


@pytest.mark.parametrize(("readme", "message"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "README.md is binary, not text: no card read"),
    (b"---\nlicense: \xff\xfe\n---\n", "README.md is not UTF-8 text: no card read"),
    (b"---\na: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n---\n", "README.md: the card uses a YAML anchor (&name); "
                                                                "cards may not"),
    (b"---\na: " + b"[" * 5000 + b"]" * 5000 + b"\n---\n", "README.md: the card nests deeper than 64 levels"),
    (b"---\nlicense: mit\n", "README.md: the card's front matter is not closed by a '---' line"),
    (b"---\n: : [\n---\n", "README.md: the card is not valid YAML"),
    (b"---\n- a list\n---\n", "README.md: the card is not a YAML mapping"),
])
def test_bad_readmes(gitd_harness, readme, message):
    info, _ = tag_one(gitd_harness, {"README.md": readme, "config.json": '{"model_type": "bert"}'})
    assert warnings(info)[0].startswith(message), warnings(info)
    assert "bert" in info["tags"]  # the rest is still derived


def test_a_yaml_alias_bomb_is_refused_before_it_expands(gitd_harness):
    lines = ["---", "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 12)]
    info, _ = tag_one(gitd_harness, {"README.md": "\n".join([*lines, "---", ""])})
    assert warnings(info) == ["README.md: the card uses a YAML anchor (&name); cards may not"]


def test_a_readme_longer_than_the_cap_is_read_up_to_the_cap(gitd_harness):
    readme = "---\nlicense: mit\n---\n" + "words " * 100_000
    info, job = tag_one(gitd_harness, {"README.md": readme}, max_card=4096)
    assert "license:mit" in info["tags"] and warnings(info) == []
    assert job["bytes_read"] == 4096
    unclosed = "---\nlicense: mit\n" + "x: y\n" * 2000 + "---\n"
    info, _ = tag_one(gitd_harness, {"README.md": unclosed}, max_card=4096)
    assert warnings(info) == ["README.md: the card's front matter is not closed within its first 4096 bytes "
                              "(the limit)"]


def test_bad_json_configs_and_parquet_footers(gitd_harness):
    info, _ = tag_one(gitd_harness, {"README.md": GOOD_CARD, "config.json": "{nope"})
    assert warnings(info) == ["config.json is not valid JSON"]
    h = gitd_harness(MetadataPlugin, name="metadata")
    good = parquet_bytes(10)
    repo = h.repo("alice/ds", type="dataset", files={
        "README.md": GOOD_CARD, "a.parquet": b"PAR1 not really", "b.parquet": good[:-30] + good[-8:],
        "c.parquet": good[:-8] + struct.pack("<I", 10**9) + b"PAR1", "d.parquet": good})
    h.run_jobs()
    flags = warnings(h.repo_info(repo))
    assert flags[0] == "a.parquet: not a Parquet file (no PAR1 at its end)"
    assert flags[1].startswith("b.parquet: the Parquet footer does not parse")
    assert flags[2] == "c.parquet: the Parquet footer claims 1000000000 bytes, over the limit of 16777216"
    assert "size_categories:n<1K" in h.repo_info(repo)["tags"]  # d.parquet's 10 rows


def test_an_lfs_pointer_whose_object_is_not_held(gitd_harness):
    info, _ = tag_one(gitd_harness, {"README.md": GOOD_CARD, "w.safetensors": LfsBytes(b"x" * 100, upload=False)})
    (msg,) = warnings(info)
    assert msg.startswith("w.safetensors: not read: ") and "is not on this server" in msg


def test_too_many_files_to_read_in_one_job(gitd_harness):
    files = {f"m{i}.safetensors": safetensors_bytes({"w": tiny_llama()["lm_head.weight"]}) for i in range(5)}
    info, job = tag_one(gitd_harness, {"README.md": GOOD_CARD, **files}, max_read_files=3)
    assert len(job["files_read"]) == 3  # of six
    assert len(warnings(info)) == 3
    assert all(w.endswith("not read: the commit has more than 3 files to read (max_read_files)")
               for w in warnings(info))
