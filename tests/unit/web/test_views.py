"""How files are shown: highlighting, binary detection, the start of big blobs, facts from
cards, .gitattributes for uploads to Git LFS, where a login may lead, its rate limit."""

from __future__ import annotations

import subprocess

import pygit2
import pytest

from gitd.git.refs import InProcessRefChanges
from gitd.hub.gitread import RepoReader
from gitd.web.blobs import WHOLE, decode, read_head
from gitd.web.facts import card_facts, human_count
from gitd.web.highlight import image_type, is_binary, render_text
from gitd.web.login import LoginLimiter, safe_next
from gitd.web.uploads import with_lfs_attributes


def test_text_is_highlighted_line_by_line_and_names_stay_escaped():
    view = render_text('x = "<script>"\n"""two\nlines"""\n', "a.py", max_highlight=10_000)
    assert view.highlighted and view.lines == 3
    assert "<script>" not in view.html and "&lt;script&gt;" in view.html
    assert view.html.count('<span id="L-') == 3
    plain = render_text("<b>\n" * 5, "a.py", max_highlight=3)
    assert not plain.highlighted and plain.lines == 5 and "<b>" not in plain.html
    assert render_text("a\nb", "LICENSE", max_highlight=100).lines == 2  # no lexer: plain lines


def test_binary_files_and_images_are_told_apart():
    assert is_binary(b"abc\0def") and not is_binary("héllo".encode())
    assert image_type("a/b/cat.PNG") == "image/png" and image_type("x.svg") == "image/svg+xml"
    assert image_type("model.safetensors") is None
    assert decode("é".encode()[:1], cut=True) == ""  # half a character at a cut is dropped


def test_only_the_start_of_a_big_blob_is_read(tmp_path):
    repo = pygit2.init_repository(str(tmp_path / "r.git"), bare=True)
    big = b"0123456789abcdef\n" * (WHOLE // 16 + 1000)
    oid = str(repo.create_blob(big))
    small = str(repo.create_blob(b"small"))
    reader = RepoReader(InProcessRefChanges())
    path = tmp_path / "r.git"
    assert read_head(reader, path, oid, len(big), 100) == big[:100]
    assert read_head(reader, path, small, 5, 100) == b"small"
    assert subprocess.run(["git", "--git-dir", str(path), "cat-file", "-s", oid], capture_output=True,
                          text=True).stdout.strip() == str(len(big))


def test_card_facts_show_license_base_model_parameters_and_dtypes():
    facts = card_facts({"license": "apache-2.0", "base_model": ["org/base", "not a repo"], "pipeline_tag": "x"},
                       {"safetensors": {"parameters": {"BF16": 7_000_000_000}, "total": 7_241_732_096}})
    by_label = {f["label"]: f["values"] for f in facts}
    assert [v["text"] for v in by_label["License"]] == ["apache-2.0"]
    assert by_label["Base model"][0] == {"text": "org/base", "url": "/org/base"}
    assert by_label["Base model"][1]["url"] is None
    assert by_label["Parameters"][0]["text"] == "7.2B" and by_label["Tensor type"][0]["text"] == "BF16"
    assert human_count(1_000_000) == "1M" and human_count(999) == "999"
    assert card_facts({"license": {"nested": "x"}, "tags": [None, True]}, {}) == []  # odd YAML shows nothing


def test_lfs_uploads_get_a_gitattributes_line_unless_one_covers_them():
    current = "*.bin filter=lfs diff=lfs merge=lfs -text\n# *.gguf filter=lfs\n"
    assert with_lfs_attributes(current, ["a/b.bin"]) is None
    out = with_lfs_attributes(current, ["a/b.bin", "m.gguf", "odd [1] *.pt", 'q"x.pt'])
    assert out is not None and out.startswith(current)
    added = out[len(current):].splitlines()
    assert added == ["/m.gguf filter=lfs diff=lfs merge=lfs -text",
                     '"/odd \\\\[1\\\\] \\\\*.pt" filter=lfs diff=lfs merge=lfs -text',
                     '"/q\\"x.pt" filter=lfs diff=lfs merge=lfs -text']


def test_git_reads_the_added_lines_as_exactly_those_paths(tmp_path):
    out = with_lfs_attributes("", ["odd [1] *.pt", "plain.gguf"])
    assert out is not None
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitattributes").write_text(out)
    result = subprocess.run(["git", "check-attr", "filter", "--", "odd [1] *.pt", "odd 1 x.pt", "plain.gguf",
                             "sub/plain.gguf"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert result.splitlines() == ["odd [1] *.pt: filter: lfs", "odd 1 x.pt: filter: unspecified",
                                   "plain.gguf: filter: lfs", "sub/plain.gguf: filter: unspecified"]


@pytest.mark.parametrize("target,expected", [
    ("/alice/m", "/alice/m"), ("/settings/tokens?x=1", "/settings/tokens?x=1"), (None, "/"), ("", "/"),
    ("//evil.example/x", "/"), ("https://evil.example", "/"), ("/\\evil.example", "/"), ("/a\nb", "/"),
    ("javascript:alert(1)", "/"),
])
def test_after_login_only_paths_on_this_site(target, expected):
    assert safe_next(target) == expected


def test_login_attempts_are_limited_per_address_and_per_user():
    limiter = LoginLimiter(3, 300.0)
    assert [limiter.take("1.1.1.1", "alice") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("1.1.1.1", "bob") > 0  # the address is spent
    assert limiter.take("2.2.2.2", "ALICE") > 0  # so is the user name, from any address
    assert limiter.take("2.2.2.2", "carol") == 0.0
