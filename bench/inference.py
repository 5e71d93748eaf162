#!/usr/bin/env python3
"""Inference endpoints: engine throughput, proxy overhead on streaming, cold start (issue #16).

    .venv/bin/python bench/inference.py [--tokens 64] [--ttft 20] [--hidden 256 --layers 4]

Makes a small causal LM on the spot (random weights, ``tests/tiny_model.py``; by default
hidden size 256, 4 layers, about 3 M parameters), pushes it to a fresh ``gitd serve`` and
measures, side by side with its peer:

* cold start: ``POST /api/plugins/inference/endpoints`` to the first streamed token through
  the daemon, with its parts (the engine's fetch from gitd, its load, the rest of its start,
  then the first token);
* throughput (completion tokens per second, greedy, ``--tokens`` each, 8 distinct prompts)
  through the local engine (the ``openai`` client, through the daemon's proxy, and directly
  to the engine's port) vs transformers ``generate`` called in this process on the same
  prompts, at 1 request at a time and at 8 concurrent (8 threads calling ``generate``);
  ratio = generate / engine (1.0: as fast; the issue asks for at most 1.2);
* time to first token of a streamed completion through the daemon vs directly to the
  engine, ``--ttft`` of each alternately, median and ratio (the issue asks for at most 1.2).

Both sides use the same torch thread count (``--threads``, default 1: on a small machine two
processes of N threads each would fight over the cores), and each figure is the median of
``--rounds`` rounds, the sides taking turns within each round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import save_results  # noqa: E402

from tests.support import new_daemon  # noqa: E402
from tests.tiny_model import corpus, make_tiny_model, upload_directory  # noqa: E402

PROMPTS = [line.lower() for line in corpus(8, seed=42)]


def api(url: str, method: str, path: str, token: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def engine_side(client, model: str, tokens: int, concurrency: int) -> tuple[int, float]:
    """(completion tokens, seconds) for the 8 prompts, ``concurrency`` at a time."""

    def one(prompt: str) -> int:
        done = client.completions.create(model=model, prompt=prompt, max_tokens=tokens, temperature=0)
        return done.usage.completion_tokens

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        counts = list(pool.map(one, PROMPTS))
    return sum(counts), time.perf_counter() - started


def generate_side(model, tokenizer, tokens: int, concurrency: int) -> tuple[int, float]:
    import torch

    def one(prompt: str) -> int:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens,
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id)
        return int(out.shape[1] - ids.shape[1])

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        counts = list(pool.map(one, PROMPTS))
    return sum(counts), time.perf_counter() - started


def first_token(client, model: str) -> float:
    """Seconds from the request to its first streamed token (the stream is read to its end, so
    the client's connection is kept for the next request, as a client's would be)."""
    started = time.perf_counter()
    took = None
    for chunk in client.completions.create(model=model, prompt=PROMPTS[0], max_tokens=8, temperature=0,
                                           stream=True):
        if took is None and chunk.choices and chunk.choices[0].text:
            took = time.perf_counter() - started
    if took is None:
        raise RuntimeError("no token came")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--ttft", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import openai
    import torch
    from huggingface_hub import HfApi, constants
    from transformers import AutoModelForCausalLM, AutoTokenizer

    constants.HF_HUB_DISABLE_XET = True
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict = {"hidden": args.hidden, "layers": args.layers, "tokens": args.tokens,
                     "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory(prefix="gitd-bench-inference-") as tmp:
        root = Path(tmp)
        model_dir = make_tiny_model(root / "model", hidden_size=args.hidden, intermediate_size=args.hidden * 2,
                                    layers=args.layers, heads=8, kv_heads=4, max_positions=1024, card=False)
        daemon = new_daemon(root / "gitd", settings={
            "plugins.inference.sleep_time": 0, "plugins.inference.rate_limit": 0,
            "plugins.inference.threads": args.threads, "plugins.inference.concurrency": 8})
        daemon.start()
        try:
            user, token = daemon.user()
            repo = f"{user}/small"
            upload_directory(HfApi(endpoint=daemon.url, token=token), repo, model_dir, private=True)
            results["parameters"] = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters())

            # Cold start: create -> running -> first token through the daemon.
            t0 = time.perf_counter()
            created = api(daemon.url, "POST", "/api/plugins/inference/endpoints", token, {"model": repo})
            eid = created["id"]
            while (info := api(daemon.url, "GET", f"/api/plugins/inference/endpoints/{eid}", token))["status"] not in (
                    "running", "failed"):
                time.sleep(0.02)
            running = time.perf_counter() - t0
            assert info["status"] == "running", info
            proxied = openai.OpenAI(base_url=f"{daemon.url}/api/plugins/inference/endpoints/{eid}/v1", api_key=token,
                                    max_retries=0, timeout=600)
            first = first_token(proxied, repo)
            total = time.perf_counter() - t0
            results["cold_start"] = {"create_to_running_s": round(running, 3), **info["timings"],
                                     "first_token_s": round(first, 3), "create_to_first_token_s": round(total, 3)}
            print(f"cold start: create -> first token {total:.2f}s (fetch {info['timings'].get('fetch_s')}s, "
                  f"load {info['timings'].get('load_s')}s, engine start {info['timings'].get('start_s')}s, "
                  f"running after {running:.2f}s, first token {first * 1000:.0f} ms)")

            _, out, _ = daemon.cli("endpoints", "status", str(eid))
            fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
            # The engine answers its daemon's key only: read it where the daemon put it (same user).
            environ = Path(f"/proc/{fields['pid']}/environ").read_bytes().split(b"\0")
            key = next(v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"GITD_ENGINE_KEY="))
            direct = openai.OpenAI(base_url=f"http://127.0.0.1:{fields['port']}/v1", api_key=key, max_retries=0,
                                   timeout=600)

            # Proxy overhead on streaming: time to first token, alternating.
            for c in (proxied, direct):
                first_token(c, repo)  # warm
            via, straight = [], []
            for _ in range(args.ttft):
                via.append(first_token(proxied, repo))
                straight.append(first_token(direct, repo))
            results["ttft"] = {"proxy_ms": round(statistics.median(via) * 1000, 2),
                               "direct_ms": round(statistics.median(straight) * 1000, 2),
                               "ratio": round(statistics.median(via) / statistics.median(straight), 3)}
            print(f"time to first token: through the daemon {results['ttft']['proxy_ms']} ms, directly "
                  f"{results['ttft']['direct_ms']} ms: ratio {results['ttft']['ratio']}")

            # Throughput: the engine vs generate in this process.
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto").eval()
            tokenizer = AutoTokenizer.from_pretrained(model_dir)
            generate_side(model, tokenizer, 4, 1)  # warm
            engine_side(direct, repo, 4, 1)
            results["throughput"] = {}
            for concurrency in (1, 8):
                rates: dict[str, list[float]] = {"generate": [], "engine_proxy": [], "engine_direct": []}
                for _ in range(args.rounds):
                    for side, run in (
                            ("generate", lambda c=concurrency: generate_side(model, tokenizer, args.tokens, c)),
                            ("engine_proxy", lambda c=concurrency: engine_side(proxied, repo, args.tokens, c)),
                            ("engine_direct", lambda c=concurrency: engine_side(direct, repo, args.tokens, c))):
                        n, took = run()
                        rates[side].append(n / took)
                row = {f"{side}_tok_s": round(statistics.median(values), 1) for side, values in rates.items()}
                row["ratio_proxy"] = round(row["generate_tok_s"] / row["engine_proxy_tok_s"], 3)
                row["ratio_direct"] = round(row["generate_tok_s"] / row["engine_direct_tok_s"], 3)
                results["throughput"][str(concurrency)] = row
                print(f"throughput at {concurrency}: generate {row['generate_tok_s']} tok/s, engine through the "
                      f"daemon {row['engine_proxy_tok_s']} tok/s (ratio {row['ratio_proxy']}), engine directly "
                      f"{row['engine_direct_tok_s']} tok/s (ratio {row['ratio_direct']})")
        finally:
            daemon.stop()
    print(f"results: {save_results('inference', results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
