"""Benchmarks of the metadata plugin (issue #12), in-process on the real daemon parts
(``gitd.testing.PluginHarness``: store, hook chain, job queue, LFS store, HTTP app).

1. **A 140 GB model, 30 safetensors shards**: the shards are Git LFS objects with real
   safetensors headers (1,050 BF16 tensors of 8192x8192, 70.5 B parameters). On local
   disk each object is a sparse file of its full size; on S3 (SeaweedFS) the object holds
   the header and the first 64 KiB of data, and the LFS table records the full size (a
   4.7 GB upload per shard would not change what is read: the first bytes). Measured: LFS bytes the job reads (every
   ranged read counted where the LFS store answers it) and the job's time, tagging from
   scratch, worst and median of 5. Peer: the ``safetensors`` package reading the same
   headers from the sparse files on local disk (``safe_open``, memory-mapped).
2. **A push that changes one README**: what the next job reads.
3. **list_models(filter=..., limit=50) over 100,000 repositories**, through the HTTP app
   (aiohttp, loopback), p50 and p90 of 60 requests per query, anonymous and signed in.
   Rows and index entries are inserted in bulk; every repository directory is a symbolic
   link to one real bare repository with a card (the 50 rows shown are described from
   git as usual). Peer: the same page without a filter (the listing's floor).

    .venv/bin/python bench/metadata.py [--repos 100000] [--no-s3]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gitd_plugins.metadata import MetadataPlugin  # noqa: E402

from gitd.lfs.pointer import format_pointer  # noqa: E402
from gitd.testing import PluginHarness  # noqa: E402
from tests.metadata_files import safetensors_header_only  # noqa: E402

SHARDS = 30
TENSORS_PER_SHARD = 35
CARD = "---\nlicense: llama3\nlanguage: [en]\npipeline_tag: text-generation\nbase_model: meta/llama\n---\n# 70B\n"
CONFIG = json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16"})


class CountingReads:
    """Counts the bytes the LFS store hands the plugin's views."""

    def __init__(self, h: PluginHarness):
        self.reader = h.parts.views.lfs
        self.inner = self.reader.read
        self.bytes = 0
        self.calls = 0
        self.reader.read = self.read

    def read(self, repo_id: int, oid: str, start: int, end: int) -> bytes:
        data = self.inner(repo_id, oid, start, end)
        self.bytes += len(data)
        self.calls += 1
        return data

    def reset(self) -> None:
        self.bytes = self.calls = 0


def big_model(h: PluginHarness, backend: str, seaweed=None, bucket: str = "") -> dict:
    repo = h.repo("meta/llama-70b", files={"README.md": "# placeholder\n"})
    h.run_jobs()
    lfs = h.parts.lfs
    files: dict[str, bytes | str] = {"README.md": CARD, "config.json": CONFIG}
    sparse: list[Path] = []
    total_size = 0
    for s in range(1, SHARDS + 1):
        head, size = safetensors_header_only({f"model.layers.{s}.t{k}.weight": ("BF16", [8192, 8192])
                                              for k in range(TENSORS_PER_SHARD)})
        oid = hashlib.sha256(b"bench shard %d" % s + head).hexdigest()  # an id, not the content's hash
        if backend == "local":
            path = lfs.storage._path(oid)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                f.write(head)
                f.truncate(size)
            sparse.append(path)
        else:
            stored = head + bytes(64 * 1024)  # the header and the first bytes of the tensors' data
            seaweed.client().put_object(bucket, lfs.storage.key(oid), io.BytesIO(stored), len(stored))
        lfs.objects.add_and_link(repo.id, oid, size)
        files[f"model-{s:05d}-of-{SHARDS:05d}.safetensors"] = format_pointer(oid, size)
        total_size += size
    counter = CountingReads(h)
    h.commit(repo, files, message="add weights")
    times, reads = [], []
    for _ in range(5):
        counter.reset()
        t0 = time.perf_counter()
        h.plugin.tagger.tag(h.refresh(repo), full=True)
        times.append(time.perf_counter() - t0)
        reads.append(counter.bytes)
    info = h.repo_info(repo)
    out = {"backend": backend, "model_bytes": total_size, "parameters": info["safetensors"]["total"],
           "lfs_bytes_read_max": max(reads), "lfs_reads": counter.calls, "tag_s_median": statistics.median(times),
           "tag_s_max": max(times)}
    if sparse:
        from safetensors import safe_open

        peer = []
        for _ in range(5):
            t0 = time.perf_counter()
            n = 0
            for path in sparse:
                with safe_open(path, "np") as f:
                    n += sum(1 for _ in f.keys())  # noqa: SIM118
            peer.append(time.perf_counter() - t0)
        out["peer_safe_open_s_median"] = statistics.median(peer)
        out["ratio_vs_peer"] = out["tag_s_median"] / out["peer_safe_open_s_median"]
    # 2. a push that changes one README
    counter.reset()
    h.commit(repo, {"README.md": CARD.replace("llama3", "llama3.1")})
    h.run_jobs()
    last = h.storage.kv.get(f"last-job:{repo.id}")
    out["readme_push_files_read"] = last["files_read"]
    out["readme_push_lfs_bytes"] = counter.bytes
    out["readme_push_bytes_read"] = last["bytes_read"]
    return out


def listing(root: Path, repos: int) -> dict:
    h = PluginHarness(MetadataPlugin, root, name="metadata")
    try:
        return _listing(h, repos)
    finally:
        h.close()


def _listing(h: PluginHarness, n: int) -> dict:
    rnd = random.Random(12)
    template = h.repo("bench/template", files={"README.md": CARD, "config.json": CONFIG})
    h.run_jobs()
    token = h.token("bench0")
    db = h.parts.store.db
    owners = []
    for i in range(1000):
        name = f"bench{i}"
        account = h.parts.accounts.find(name) or h.parts.accounts.create_user(name)
        owners.append(account.id)
    start = db.execute("SELECT coalesce(max(id), 0) FROM repos").fetchone()[0] + 1
    plan = []
    with h.parts.store.transaction():
        for i in range(n):
            rid = start + i
            stamp = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{rnd.randrange(60):02d}.000Z"
            private = rnd.random() < 0.1
            db.execute("INSERT INTO repos (id, owner_id, name, type, private, default_branch, description, "
                       "created_at, updated_at) VALUES (?, ?, ?, 'model', ?, 'main', '', ?, ?)",
                       [rid, owners[i % len(owners)], f"m{i}", int(private), stamp, stamp])
            tags = ["transformers", "safetensors"]
            tags += ["gguf"] if rnd.random() < 0.1 else []
            tags += ["rare-tag"] if rnd.random() < 0.001 else []
            tags += ["en"] if rnd.random() < 0.6 else ["fr"]
            tags += ["license:mit"] if rnd.random() < 0.4 else ["license:apache-2.0"]
            pipeline = "text-generation" if rnd.random() < 0.3 else "text-classification"
            plan.append((rid, f"bench{i % 1000}/m{i}", tags, pipeline))
    storage = h.storage
    with storage.transaction():
        for rid, name, tags, pipeline in plan:
            info = json.dumps({"tags": [*tags, pipeline], "pipeline_tag": pipeline, "metadataFlags": []})
            storage.execute("INSERT INTO {prefix}repos (repo_id, full_name, type, commit_id, info) "
                            "VALUES (?, ?, 'model', 'x', ?)", [rid, name, info])
            entries = [("tag", t) for t in [*tags, pipeline]] + [("pipeline_tag", pipeline)]
            entries += [("language", t) for t in tags if t in ("en", "fr")]
            entries += [("license", t.split(":")[1]) for t in tags if t.startswith("license:")]
            for key, value in entries:
                storage.execute("INSERT INTO {prefix}idx VALUES (?, ?, 'model', ?)", [key, value, rid])
    repos_dir = h.parts.data.root / "repos"
    for rid, _, _, _ in plan:
        link = repos_dir / f"{rid % 256:02x}" / f"{rid}.git"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink(template.path, link)
    db.execute("ANALYZE")
    queries = {"no filter (peer)": "limit=50", "filter=gguf (10%)": "filter=gguf&limit=50",
               "filter=rare-tag (0.1%)": "filter=rare-tag&limit=50",
               "pipeline_tag=text-generation (30%)": "pipeline_tag=text-generation&limit=50",
               "filter=gguf&filter=en (6%)": "filter=gguf&filter=en&limit=50",
               "filter=safetensors, sort=lastModified (100%)": "filter=safetensors&sort=lastModified&limit=50",
               "filter=license:mit, sort=createdAt (40%)": "filter=license:mit&sort=createdAt&limit=50"}
    out: dict[str, dict] = {}
    for who, headers in (("anonymous", {}), ("signed in", {"Authorization": f"Bearer {token}"})):
        for label, query in queries.items():
            times = []
            for i in range(63):
                t0 = time.perf_counter()
                r = h.http("GET", "/api/models?" + query, headers=headers)
                if i >= 3:  # the first requests warm the caches
                    times.append(time.perf_counter() - t0)
                assert r.status == 200, r.body
            count = len(r.json())
            times.sort()
            out[f"{who}: {label}"] = {"p50_ms": round(1000 * times[len(times) // 2], 2),
                                      "p90_ms": round(1000 * times[int(len(times) * 0.9)], 2), "rows": count}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=int, default=100_000)
    parser.add_argument("--no-s3", action="store_true")
    parser.add_argument("--only-listing", action="store_true")
    args = parser.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-metadata-") as tmp:
        work = Path(tmp)
        if not args.only_listing:
            h = PluginHarness(MetadataPlugin, work / "local", name="metadata")
            try:
                results["big model, local disk"] = big_model(h, "local")
            finally:
                h.close()
        if not args.no_s3 and not args.only_listing:
            from tests.seaweed import start_seaweed

            seaweed = start_seaweed(work / "seaweed")
            try:
                bucket = seaweed.make_bucket("bench-metadata")
                h = PluginHarness(MetadataPlugin, work / "s3", name="metadata",
                                  config=seaweed.gitd_settings(bucket, presign=False))
                try:
                    results["big model, S3 (SeaweedFS)"] = big_model(h, "s3", seaweed, bucket)
                finally:
                    h.close()
            finally:
                seaweed.stop()
        results[f"list_models over {args.repos} repositories"] = listing(work / "listing", args.repos)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
