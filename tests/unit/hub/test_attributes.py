"""LfsAttributes and looks_binary: preupload's LFS decisions (gitd.hub.attributes)."""

from __future__ import annotations

from gitd.hub.attributes import MAX_PATTERNS, LfsAttributes, looks_binary
from gitd.hub.seed import gitattributes


def test_the_default_attributes_track_the_hubs_formats():
    model, dataset = LfsAttributes(gitattributes("model")), LfsAttributes(gitattributes("dataset"))
    for path in ("w.bin", "sub/model.safetensors", "x.tar.gz", "saved_model/a/b", "events.out.tfevents.1"):
        assert model.is_lfs(path) and dataset.is_lfs(path), path
    assert not model.is_lfs("README.md") and not model.is_lfs("img.png") and dataset.is_lfs("img/x.png")


def test_the_last_line_decides_and_unset_filters_count():
    attrs = LfsAttributes("*.bin filter=lfs -text\nkeep.bin -filter\n# *.txt filter=lfs\n*.md text\ndir/ filter=lfs\n")
    assert attrs.is_lfs("a.bin") and attrs.is_lfs("x/a.bin")
    assert not attrs.is_lfs("keep.bin") and not attrs.is_lfs("a.txt") and not attrs.is_lfs("a.md")
    assert not attrs.is_lfs("dir/f")  # folder patterns match no file in attribute files
    assert LfsAttributes("*.bin filter=lfs\n*.bin filter=other\n").is_lfs("a.bin") is False


def test_hostile_attribute_files_are_bounded():
    many = "".join(f"*.e{i} filter=lfs\n" for i in range(MAX_PATTERNS + 50))
    attrs = LfsAttributes(many)
    assert attrs.is_lfs("a.e0") and not attrs.is_lfs(f"a.e{MAX_PATTERNS + 10}")
    assert not LfsAttributes("").is_lfs("a.bin") and not LfsAttributes("\0\0 filter=lfs").is_lfs("a")
    long = "a" * 5000 + "* filter=lfs\n"
    assert not LfsAttributes(long).is_lfs("a" * 5000 + "x")


def test_binary_samples():
    assert looks_binary(b"\x00abc") and looks_binary(b"\xff\xfe\xfd text")
    assert not looks_binary("héllo wörld".encode())
    cut = "é".encode()[:1]  # a character cut at the end of a truncated sample is not binary
    assert not looks_binary(b"abc" + cut) and looks_binary(b"abc" + cut, truncated=False)
