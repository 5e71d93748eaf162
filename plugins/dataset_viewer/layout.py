"""Which configs and splits a dataset repository holds, found the way the Hub finds them.

1. The dataset card (README.md) may list ``configs:`` in its YAML header, each with a
   ``config_name``, ``data_files`` (a pattern, a list of patterns, or a list of
   ``{split, path}``), an optional ``data_dir`` and ``default``.
2. Otherwise (and for a config that names no ``data_files``) the files' names decide,
   in this order, the first rule that finds files winning: ``data/{split}-00000-of-00003.*``
   shards; a directory named after a split (``train/``, ``data/test-v2/``); a file named
   after one (``train.csv``, ``my_valid-1.jsonl``); else every data file is ``train``.
   Split keywords: train/training, validation/valid/dev/val, test/testing/eval/evaluation,
   bounded by ``-``, ``.``, ``_``, a space, a digit or a path boundary.

Data files are Parquet, CSV, TSV, JSON/JSON Lines and Arrow files, optionally compressed
(``.gz``, ``.bz2``, ``.zst``, ``.lz4``); without a card, only the most common format is used.
Hidden paths (a segment starting with ``.`` or ``__``) are ignored.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml

from gitd.plugin_api import LimitExceeded, RepoView, ViewError

FORMATS = {"parquet": "parquet", "csv": "csv", "tsv": "tsv", "json": "json", "jsonl": "json", "ndjson": "json",
           "arrow": "arrow"}
COMPRESSIONS = {"gz": "gzip", "bz2": "bz2", "zst": "zstd", "lz4": "lz4"}
FORMAT_PRIORITY = ("parquet", "arrow", "csv", "tsv", "json")
IGNORED_NAMES = frozenset({"README.md", "config.json", "dataset_info.json", "dataset_infos.json",
                           "dataset_dict.json", "dummy_data.zip"})
SPLIT_KEYWORDS = {"train": ("train", "training"), "validation": ("validation", "valid", "dev", "val"),
                  "test": ("test", "testing", "eval", "evaluation")}
DEFAULT_SPLITS = tuple(SPLIT_KEYWORDS)
_SEP = r"[-._ 0-9]"
_DIR_RULES = {split: re.compile(rf"^(?:.*{_SEP})?(?:{'|'.join(words)})(?:{_SEP}.*)?$")
              for split, words in SPLIT_KEYWORDS.items()}
_FILE_RULES = {split: re.compile(rf"^(?:.*{_SEP})?(?:{'|'.join(words)}){_SEP}.*$")
               for split, words in SPLIT_KEYWORDS.items()}
_SHARDED = re.compile(r"^data/([^/]+?)-[0-9]{5}-of-[0-9]{5}[^/]*\.[^/]*$")
CONFIG_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")
SPLIT_NAME = re.compile(r"^\w+(\.\w+)*$")
MAX_CARD = 1 << 20
DEFAULT_CONFIG = "default"


@dataclass(frozen=True)
class DataFile:
    path: str
    size: int
    format: str
    compression: str | None
    blob: str  # the git object id (an LFS pointer's, for files in LFS)
    lfs_oid: str | None  # the LFS object (sha256), when the file is stored in Git LFS


@dataclass
class SplitPlan:
    config: str
    split: str
    files: list[DataFile] = field(default_factory=list)
    error: str | None = None
    labels: dict[str, list[str]] = field(default_factory=dict)  # ClassLabel columns the card declares

    @property
    def format(self) -> str | None:
        formats = {f.format for f in self.files}
        return formats.pop() if len(formats) == 1 else None

    @property
    def original_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class Layout:
    splits: list[SplitPlan] = field(default_factory=list)
    error: str | None = None  # the whole dataset cannot be read (no data files, a broken card)

    def configs(self) -> list[str]:
        return list(dict.fromkeys(s.config for s in self.splits))


def data_format(path: str) -> tuple[str, str | None] | None:
    """(format, compression) of a data file name, or None for other files."""
    parts = path.rsplit("/", 1)[-1].lower().split(".")
    compression = COMPRESSIONS.get(parts[-1]) if len(parts) > 2 else None
    if compression is not None:
        parts = parts[:-1]
    fmt = FORMATS.get(parts[-1]) if len(parts) > 1 else None
    return (fmt, compression) if fmt is not None else None


def hidden(path: str) -> bool:
    return any(part.startswith((".", "__")) for part in path.split("/"))


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A glob as the Hub reads ``data_files``: ``*`` and ``?`` stay within a path segment,
    ``**`` crosses them, ``[...]`` is a character class."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) > 0:
            body = pattern[i + 1:end]
            negate = body.startswith("!")
            chars = "".join(c if c == "-" else re.escape(c) for c in (body[1:] if negate else body))
            out.append(f"[{'^' if negate else ''}{chars}]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


def read_card(view: RepoView, commit: str) -> dict[str, Any]:
    """The YAML header of README.md ({} without one); ValueError when it does not parse."""
    entry = view.entry(commit, "README.md")
    if entry is None or entry.type != "file":
        return {}
    try:
        text = view.read(commit, "README.md", max_size=MAX_CARD).decode("utf-8-sig", "replace")
    except LimitExceeded:
        raise ValueError(f"README.md is larger than {MAX_CARD} bytes") from None
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() != "---":
        return {}
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        return {}
    try:
        header = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError as exc:
        raise ValueError(f"README.md: the YAML header does not parse: {exc}") from None
    return header if isinstance(header, dict) else {}


def detect(view: RepoView, commit: str, *, max_files: int = 10_000) -> Layout:
    """The configs and splits of ``commit``'s tree."""
    try:
        files = view.files(commit, limit=max_files * 10 + 1000)
    except LimitExceeded:
        return Layout(error=f"the repository has more than {max_files * 10 + 1000} files; the viewer reads "
                            "smaller trees")
    data = [DataFile(e.path, e.size, *fmt, e.oid, e.lfs.oid if e.lfs else None)
            for e in files if (fmt := data_format(e.path)) is not None]
    data = [f for f in data if not hidden(f.path) and f.path.rsplit("/", 1)[-1] not in IGNORED_NAMES]
    if len(data) > max_files:
        return Layout(error=f"the dataset has {len(data)} data files; the viewer reads at most {max_files}")
    try:
        card = read_card(view, commit)
    except (ValueError, ViewError) as exc:
        return Layout(error=str(exc))
    layout = _configs(card, data)
    for plan in layout.splits:
        plan.labels = card_class_labels(card, plan.config)
    return layout


def _configs(card: dict[str, Any], data: list[DataFile]) -> Layout:
    configs = card.get("configs")
    if configs is None:
        return _conventions(DEFAULT_CONFIG, data, "")
    if not isinstance(configs, list) or not configs:
        return Layout(error="README.md: configs must be a list of {config_name, data_files} entries")
    layout = Layout()
    seen: set[str] = set()
    for position, config in enumerate(configs):
        name = config.get("config_name") if isinstance(config, dict) else None
        if not isinstance(name, str) or not CONFIG_NAME.match(name) or name in seen:
            shown = name if isinstance(name, str) else f"#{position + 1}"
            layout.splits.append(SplitPlan(shown if isinstance(name, str) else f"config-{position + 1}", "train",
                                           error=f"README.md: config {shown!r} has no valid, unique config_name "
                                                 "(letters, digits, '_', '.', '-')"))
            continue
        seen.add(name)
        layout.splits += _card_config(name, config, data).splits
    return layout


def card_class_labels(card: dict[str, Any], config: str) -> dict[str, list[str]]:
    """The ClassLabel columns the card's ``dataset_info`` declares for ``config``, with their
    names in label order, as ``datasets`` writes them::

        dataset_info:            # or a list of these, each with a config_name
          features:
          - name: label
            dtype:
              class_label:
                names: {'0': negative, '1': positive}    # or [negative, positive]

    Anything malformed declares nothing (the column is read as it is)."""
    infos = card.get("dataset_info")
    if isinstance(infos, dict):
        infos = [infos]
    if not isinstance(infos, list):
        return {}
    named = [i for i in infos if isinstance(i, dict) and i.get("config_name", DEFAULT_CONFIG) == config]
    features = named[0].get("features") if named else None
    out: dict[str, list[str]] = {}
    for feature in features if isinstance(features, list) else []:
        dtype = feature.get("dtype") if isinstance(feature, dict) else None
        label = dtype.get("class_label") if isinstance(dtype, dict) else None
        names = label.get("names") if isinstance(label, dict) else None
        if isinstance(names, dict):
            try:
                order = sorted((int(k), str(v)) for k, v in names.items())
            except (TypeError, ValueError):
                continue
            if [k for k, _ in order] != list(range(len(order))):
                continue
            names = [v for _, v in order]
        if isinstance(names, list) and names and isinstance(feature.get("name"), str):
            out[feature["name"]] = [str(n) for n in names]
    return out


def _card_config(name: str, config: dict[str, Any], data: list[DataFile]) -> Layout:
    data_dir = str(config.get("data_dir") or "").strip("/")
    spec = config.get("data_files")
    if spec is None:
        return _conventions(name, data, data_dir)
    if isinstance(spec, str):
        spec = [spec]
    splits: dict[str, list[str]] = {}
    if isinstance(spec, list) and all(isinstance(s, str) for s in spec):
        splits["train"] = spec
    elif isinstance(spec, list) and all(isinstance(s, dict) for s in spec):
        for item in spec:
            split, paths = item.get("split", "train"), item.get("path")
            paths = [paths] if isinstance(paths, str) else paths
            if not isinstance(split, str) or not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                return Layout([SplitPlan(name, str(split), error="README.md: each data_files entry is "
                                                                   "{split: NAME, path: PATTERN or [PATTERNS]}")])
            splits.setdefault(split, []).extend(paths)
    else:
        return Layout([SplitPlan(name, "train", error="README.md: data_files must be a pattern, a list of "
                                                       "patterns, or a list of {split, path}")])
    out = Layout()
    for split, patterns in splits.items():
        if not SPLIT_NAME.match(split):
            out.splits.append(SplitPlan(name, split, error=f"split name {split!r} is not valid (letters, digits, "
                                                           "'_', separated by '.')"))
            continue
        rules = [glob_regex(f"{data_dir}/{p.removeprefix('./')}" if data_dir else p.removeprefix("./"))
                 for p in patterns]
        matched = [f for f in data if any(r.match(f.path) for r in rules)]
        plan = SplitPlan(name, split, sorted(matched, key=lambda f: f.path))
        if not matched:
            plan.error = f"no data file matches {', '.join(patterns)}"
        elif plan.format is None:
            plan.error = f"the split mixes formats ({', '.join(sorted({f.format for f in matched}))})"
        out.splits.append(plan)
    return out


def _conventions(config: str, data: list[DataFile], data_dir: str) -> Layout:
    if data_dir:
        data = [f for f in data if f.path.startswith(data_dir + "/")]
    if not data:
        where = f" under {data_dir}/" if data_dir else ""
        return Layout(error=f"no data files{where} (Parquet, CSV, TSV, JSON Lines or Arrow)")
    counts = Counter(f.format for f in data)
    best = max(counts.values())
    fmt = next(f for f in FORMAT_PRIORITY if counts.get(f) == best)
    data = sorted((f for f in data if f.format == fmt), key=lambda f: f.path)
    base = len(data_dir) + 1 if data_dir else 0
    splits = _assign(data, base)
    bad = [s for s in splits if not SPLIT_NAME.match(s)]
    if bad:
        return Layout(error=f"split name {bad[0]!r} (from the file names) is not valid")
    return Layout([SplitPlan(config, split, files) for split, files in splits.items()])


def _assign(data: list[DataFile], base: int) -> dict[str, list[DataFile]]:
    sharded: dict[str, list[DataFile]] = {}
    for f in data:
        m = _SHARDED.match(f.path[base:])
        if m:
            sharded.setdefault(m.group(1), []).append(f)
    if sharded:
        order = [s for s in DEFAULT_SPLITS if s in sharded] + sorted(set(sharded) - set(DEFAULT_SPLITS))
        return {s: sharded[s] for s in order}
    for rule, part in ((_DIR_RULES, _dirs), (_FILE_RULES, _basename)):
        found = {split: [f for f in data if any(r.match(p) for p in part(f.path[base:]))]
                 for split, r in rule.items()}
        found = {s: files for s, files in found.items() if files}
        if found:
            return found
    return {"train": data}


def _dirs(path: str) -> list[str]:
    return path.split("/")[:-1]


def _basename(path: str) -> list[str]:
    return [path.rsplit("/", 1)[-1]]
