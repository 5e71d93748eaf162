"""The local inference engine: a transformers model behind an OpenAI-compatible HTTP API.

Run by the inference plugin as a supervised subprocess (never inside the daemon)::

    python -m gitd_plugins.inference.server --model NS/NAME --revision SHA --port PORT \
        [--served-name NAME] [--max-memory BYTES] [--device cpu|cuda|auto] [--threads N] [--status FILE]

It fetches the model **from gitd** with huggingface_hub (``HF_ENDPOINT`` is the daemon,
``HF_TOKEN`` a token that reads that one repository, ``HF_HOME`` its cache), refusing a model
too large for ``--max-memory`` before fetching its weights (the parameter count the daemon's
metadata plugin reports in ``model_info``, else the safetensors headers), loads it, and only
then listens on ``127.0.0.1:PORT``. Its progress goes to ``--status`` as JSON (``phase``:
fetching, loading, ready or failed with ``reason``; the seconds each part took), which the
plugin reads for the endpoint's status. A model that cannot be served exits with status 3.

With ``GITD_ENGINE_KEY`` set, every route but ``/health`` wants it as a bearer token (the
daemon's proxy sends it; nobody else on the host can use the engine). Routes:
``GET /health``, ``GET /v1/models``, ``POST /v1/completions``,
``POST /v1/chat/completions`` (the tokenizer's chat template), with ``max_tokens``,
``temperature``, ``top_p``, ``stop``, ``stream`` (server-sent events, ``[DONE]`` last;
``stream_options.include_usage``) and usage counts. A prompt over the model's context length
is a 400 (``context_length_exceeded``). A client that goes away mid-stream stops its
generation at the next token. Generation runs on a thread pool (``--concurrency``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

log = logging.getLogger("gitd.inference.engine")

FAILED_EXIT = 3  # the model cannot be served: the supervisor does not restart it
DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
               "F8_E4M3": 1, "F8_E5M2": 1, "I8": 1, "U8": 1, "BOOL": 1}
# What the engine fetches: config, tokenizer and safetensors weights (no other formats, no extras).
FETCH_PATTERNS = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.tiktoken", "merges.txt", "vocab.txt",
                  "vocab.json"]


class Refused(Exception):
    """The model cannot be served; the message says why."""


class Status:
    """The engine's progress, written atomically to a JSON file the plugin reads."""

    def __init__(self, path: str | None):
        self.path = Path(path) if path else None
        self.data: dict[str, Any] = {"phase": "starting", "pid": os.getpid(), "started": time.time()}

    def set(self, **fields: Any) -> None:
        self.data.update(fields)
        if self.path is not None:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data))
            os.replace(tmp, self.path)


def estimate_bytes(repo: str, revision: str) -> tuple[int, int] | None:
    """(parameters, bytes as stored) of the model's weights: the metadata plugin's count in
    ``model_info`` (``safetensors.parameters`` per dtype), else the safetensors headers."""
    from huggingface_hub import HfApi

    api = HfApi()
    params: dict[str, int] = {}
    try:
        info = api.model_info(repo, revision=revision)
        if info.safetensors is not None:
            params = dict(info.safetensors.parameters)
    except Exception as exc:
        log.warning("model_info failed (%s); reading the safetensors headers", exc)
    if not params:
        try:
            meta = api.get_safetensors_metadata(repo, revision=revision)
        except Exception as exc:
            log.warning("no safetensors metadata (%s)", exc)
            return None
        params = dict(meta.parameter_count)
    total = sum(params.values())
    return total, sum(n * DTYPE_BYTES.get(dtype.upper(), 4) for dtype, n in params.items())


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.2f} GiB"


@dataclass
class Engine:
    model: Any
    tokenizer: Any
    name: str
    context_length: int
    device: str
    pool: ThreadPoolExecutor
    created: int = field(default_factory=lambda: int(time.time()))


def load(args: argparse.Namespace, status: Status) -> Engine:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise Refused(f"the engine's interpreter lacks {exc.name or exc}: install gitd with its 'inference' extra "
                      "there (or set plugins.inference.python to one that has it)") from None

    status.set(phase="fetching")
    t0 = time.monotonic()
    if args.max_memory > 0:
        estimate = estimate_bytes(args.model, args.revision)
        if estimate is not None and estimate[1] > args.max_memory:
            raise Refused(f"the model has {estimate[0]:,} parameters (about {_gib(estimate[1])} as stored), more than "
                          f"the endpoint's memory limit of {_gib(args.max_memory)}: refused before loading")
    try:
        local = snapshot_download(args.model, revision=args.revision, allow_patterns=FETCH_PATTERNS)
    except Exception as exc:
        raise Refused(f"cannot fetch {args.model}@{args.revision[:12]} from gitd: {type(exc).__name__}: "
                      f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    fetched = time.monotonic()
    status.set(phase="loading", fetch_s=round(fetched - t0, 3))
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise Refused(f"the engine's interpreter lacks {exc.name or exc}: install gitd with its 'inference' extra "
                      "there (or set plugins.inference.python to one that has it)") from None

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        tokenizer = AutoTokenizer.from_pretrained(local)
        model = AutoModelForCausalLM.from_pretrained(local, dtype="auto").to(device).eval()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise Refused(f"the model does not load: {type(exc).__name__}: {first}"[:500]) from None
    config = model.config
    ctx = (getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
           or tokenizer.model_max_length or 2048)
    status.set(load_s=round(time.monotonic() - fetched, 3))
    return Engine(model, tokenizer, args.served_name or args.model, int(ctx), device,
                  ThreadPoolExecutor(max_workers=max(1, args.concurrency), thread_name_prefix="generate"))


# -- requests ----------------------------------------------------------------------------------
class BadRequest(Exception):
    def __init__(self, message: str, code: str | None = None, status: int = 400, param: str | None = None):
        super().__init__(message)
        self.message, self.code, self.status, self.param = message, code, status, param


def _error(exc: BadRequest) -> web.Response:
    kind = "invalid_request_error" if exc.status < 500 else "server_error"
    return web.json_response({"error": {"message": exc.message, "type": kind, "param": exc.param,
                                        "code": exc.code}}, status=exc.status)


def _number(body: dict, key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise BadRequest(f"{key} must be a number from {low} to {high}", param=key)
    return float(value)


def _stops(body: dict) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
        raise BadRequest("stop must be a string or a list of at most 4 non-empty strings", param="stop")
    return stops


@dataclass
class Job:
    """One generation: token ids arrive on ``queue`` from the generating thread."""

    prompt_ids: Any
    max_tokens: int
    temperature: float
    top_p: float
    stops: list[str]
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)


def _generate_all(engine: Engine, job: Job) -> list[int]:
    """On a pool thread: run ``generate`` to its end; the new token ids (a request that is not
    streamed and has no stop strings needs nothing token by token)."""
    import torch

    ids = job.prompt_ids.to(engine.device)
    tok = engine.tokenizer
    options: dict[str, Any] = {"do_sample": job.temperature > 0}
    if job.temperature > 0:
        options.update(temperature=job.temperature, top_p=job.top_p, top_k=0)
    with torch.inference_mode():
        out = engine.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=job.max_tokens,
            pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id, **options)
    return out[0, ids.shape[1]:].tolist()


def _generate(engine: Engine, job: Job) -> None:
    """On a pool thread: run ``generate``, handing each new token to the event loop."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList
    from transformers.generation.streamers import BaseStreamer

    put = job.loop.call_soon_threadsafe

    class Streamer(BaseStreamer):
        def __init__(self) -> None:
            self.prompt_seen = False

        def put(self, value: Any) -> None:
            if not self.prompt_seen:  # generate hands the prompt over first
                self.prompt_seen = True
                return
            for token in value.reshape(-1).tolist():
                put(job.queue.put_nowait, token)

        def end(self) -> None:
            pass

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), job.cancel.is_set(), dtype=torch.bool, device=input_ids.device)

    try:
        ids = job.prompt_ids.to(engine.device)
        sample = job.temperature > 0
        options: dict[str, Any] = {"do_sample": sample}
        if sample:
            options.update(temperature=job.temperature, top_p=job.top_p, top_k=0)
        tok = engine.tokenizer
        with torch.inference_mode():
            engine.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=job.max_tokens,
                streamer=Streamer(), stopping_criteria=StoppingCriteriaList([Cancelled()]),
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id, **options)
    except Exception as exc:  # reported to the waiting request
        put(job.queue.put_nowait, exc)
    finally:
        put(job.queue.put_nowait, None)


class Decoded:
    """Tokens decoded incrementally, ``stop`` strings cut, text released only once no stop
    string can still begin in it.

    Each token decodes only a short window (the tokens since the last released piece, with
    the one before as context: byte-level and sentencepiece tokenizers join pieces
    differently at the start of a text), so a long completion costs linear time."""

    def __init__(self, tokenizer: Any, stops: list[str]):
        self.tokenizer = tokenizer
        self.stops = stops
        self.hold = max((len(s) - 1 for s in stops), default=0)
        self.ids: list[int] = []
        self.prefix = 0  # ids[prefix:read] decode to the context of the next piece
        self.read = 0
        self.text = ""  # decoded so far (cut at a stop string once one is found)
        self.sent = 0
        self.stopped = False
        self.eos = False

    def add(self, token: int) -> str:
        if token == self.tokenizer.eos_token_id:
            self.eos = True
            return ""
        self.ids.append(token)
        if not self._decode(final=False):
            return ""
        if self.stopped:
            return self.flush()
        end = len(self.text) - self.hold
        if end <= self.sent:
            return ""
        out, self.sent = self.text[self.sent:end], end
        return out

    def _decode(self, *, final: bool) -> bool:
        """Move what the tokens since the last piece decode to into ``text`` (unless it may be a
        character still split across tokens, and more may come); cut at a stop string."""
        if self.stopped or self.read == len(self.ids):
            return False
        decode = self.tokenizer.decode
        context = decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        window = decode(self.ids[self.prefix:], skip_special_tokens=True)
        if not final and (len(window) <= len(context) or window.endswith("\ufffd")):
            return False
        start = len(self.text)
        self.text += window[len(context):]
        self.prefix, self.read = self.read, len(self.ids)
        for stop in self.stops:
            at = self.text.find(stop, max(0, start - len(stop) + 1))
            if at >= 0:
                self.text = self.text[:at]
                self.stopped = True
        return True

    def flush(self) -> str:
        """The rest of the text (the generation ended, or a stop string was found)."""
        self._decode(final=True)
        out, self.sent = self.text[self.sent:], len(self.text)
        return out


class Api:
    def __init__(self, engine: Engine):
        self.engine = engine

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/health", self.health), web.get("/v1/models", self.models),
                web.post("/v1/completions", self.completions), web.post("/v1/chat/completions", self.chat)]

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "model": self.engine.name, "device": self.engine.device,
                                  "context_length": self.engine.context_length})

    async def models(self, request: web.Request) -> web.Response:
        e = self.engine
        return web.json_response({"object": "list", "data": [
            {"id": e.name, "object": "model", "created": e.created, "owned_by": "gitd",
             "max_model_len": e.context_length}]})

    async def _body(self, request: web.Request) -> dict:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        model = body.get("model")
        if model is not None and model != self.engine.name:
            raise BadRequest(f"The model `{model}` does not exist; this endpoint serves `{self.engine.name}`",
                             code="model_not_found", status=404, param="model")
        if body.get("n", 1) != 1:
            raise BadRequest("n must be 1", param="n")
        return body

    async def completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
            prompt = body.get("prompt")
            if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
                prompt = prompt[0]
            if not isinstance(prompt, str):
                raise BadRequest("prompt must be a string", param="prompt")
            ids = self.engine.tokenizer(prompt, return_tensors="pt")["input_ids"]
            return await self._run(request, body, ids, chat=False, default_max=16)
        except BadRequest as exc:
            return _error(exc)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._body(request)
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages or not all(
                    isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                    for m in messages):
                raise BadRequest("messages must be a non-empty list of {role, content} strings", param="messages")
            tok = self.engine.tokenizer
            if not tok.chat_template:
                raise BadRequest("this model's tokenizer has no chat template: use /v1/completions")
            text = tok.apply_chat_template([{"role": m["role"], "content": m["content"]} for m in messages],
                                           add_generation_prompt=True, tokenize=False)
            ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
            return await self._run(request, body, ids, chat=True, default_max=None)
        except BadRequest as exc:
            return _error(exc)

    def _whole(self, rid: str, created: int, chat: bool, decoded: Decoded, n_prompt: int,
               count: int) -> web.Response:
        """A completion answered in one piece."""
        name, text, reason = self.engine.name, decoded.text, _finish(decoded)
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": reason}
            return web.json_response({"id": rid, "object": "chat.completion", "created": created, "model": name,
                                      "choices": [choice], "usage": _usage(n_prompt, count)})
        return web.json_response({"id": rid, "object": "text_completion", "created": created, "model": name,
                                  "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": reason}],
                                  "usage": _usage(n_prompt, count)})

    async def _run(self, request: web.Request, body: dict, ids: Any, *, chat: bool,
                   default_max: int | None) -> web.StreamResponse:
        e = self.engine
        n_prompt = int(ids.shape[1])
        room = e.context_length - n_prompt
        raw_max = body.get("max_completion_tokens", body.get("max_tokens"))
        if raw_max is not None and (isinstance(raw_max, bool) or not isinstance(raw_max, int) or raw_max < 1):
            raise BadRequest("max_tokens must be a positive whole number", param="max_tokens")
        max_tokens = raw_max if raw_max is not None else (default_max or room)
        if room < 1 or max_tokens > room:
            raise BadRequest(f"This model's maximum context length is {e.context_length} tokens. However, you "
                             f"requested {n_prompt + max_tokens} tokens ({n_prompt} in the prompt, {max_tokens} for "
                             "the completion). Please reduce the prompt or max_tokens.",
                             code="context_length_exceeded", param="messages" if chat else "prompt")
        job = Job(ids, max_tokens, _number(body, "temperature", 1.0, 0, 2), _number(body, "top_p", 1.0, 0, 1),
                  _stops(body), asyncio.get_running_loop())
        if job.top_p == 0:
            job.top_p = 1e-6
        stream = bool(body.get("stream"))
        usage_in_stream = bool((body.get("stream_options") or {}).get("include_usage")) if stream else False
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        created = int(time.time())
        decoded = Decoded(e.tokenizer, job.stops)
        count = 0
        if not stream and not job.stops:
            new = await job.loop.run_in_executor(e.pool, _generate_all, e, job)
            count = len(new)
            decoded.eos = bool(new) and new[-1] == e.tokenizer.eos_token_id
            decoded.text = e.tokenizer.decode(new, skip_special_tokens=True)
            return self._whole(rid, created, chat, decoded, n_prompt, count)
        e.pool.submit(_generate, e, job)

        async def tokens():
            nonlocal count
            while True:
                item = await job.queue.get()
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                if decoded.stopped or decoded.eos:
                    continue
                count += 1
                piece = decoded.add(item)
                if decoded.stopped or decoded.eos:
                    job.cancel.set()
                yield piece

        def finish() -> str:
            return _finish(decoded)

        def usage() -> dict:
            return _usage(n_prompt, count)

        def chunk(delta: dict | str, reason: str | None) -> dict:
            if chat:
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}
                return {"id": rid, "object": "chat.completion.chunk", "created": created, "model": e.name,
                        "choices": [choice]}
            return {"id": rid, "object": "text_completion", "created": created, "model": e.name,
                    "choices": [{"index": 0, "text": delta, "logprobs": None, "finish_reason": reason}]}

        if not stream:
            try:
                async for _ in tokens():
                    pass
            finally:
                job.cancel.set()
            decoded.flush()
            return self._whole(rid, created, chat, decoded, n_prompt, count)

        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)

        async def send(data: dict | str) -> None:
            payload = data if isinstance(data, str) else json.dumps(data)
            await resp.write(f"data: {payload}\n\n".encode())

        try:
            if chat:
                await send(chunk({"role": "assistant", "content": ""}, None))
            async for piece in tokens():
                if piece:
                    await send(chunk({"content": piece} if chat else piece, None))
            tail = decoded.flush()
            await send(chunk(({"content": tail} if tail else {}) if chat else tail, finish()))
            if usage_in_stream:
                await send({"id": rid, "object": "chat.completion.chunk" if chat else "text_completion",
                            "created": created, "model": e.name, "choices": [], "usage": usage()})
            await send("[DONE]")
            await resp.write_eof()
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            log.info("%s: the client went away after %d tokens; generation stopped", rid, count)
            raise
        finally:
            job.cancel.set()
        return resp


def _keyed(key: str) -> Any:
    """Only the daemon's proxy may call the API: it sends the key it started the engine with
    (``GITD_ENGINE_KEY``), so another local user cannot reach a private model through the
    engine's port. ``/health`` answers anyone (kubernetes probes it)."""
    import hmac

    expected = f"Bearer {key}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if key and request.path != "/health":
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return _error(BadRequest("this engine answers its gitd daemon only", code="invalid_api_key",
                                         status=401))
        return await handler(request)

    return check


def _finish(decoded: Decoded) -> str:
    return "stop" if decoded.stopped or decoded.eos else "length"


def _usage(n_prompt: int, count: int) -> dict:
    return {"prompt_tokens": n_prompt, "completion_tokens": count, "total_tokens": n_prompt + count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gitd_plugins.inference.server")
    parser.add_argument("--model", required=True, help="NS/NAME of the model repository in gitd")
    parser.add_argument("--revision", required=True, help="the commit to serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--served-name", default="")
    parser.add_argument("--max-memory", type=int, default=0, help="bytes the weights may take (0: no limit)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--concurrency", type=int, default=8, help="generations at once")
    parser.add_argument("--status", default=os.environ.get("GITD_ENGINE_STATUS"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    status = Status(args.status)
    if not os.environ.get("HF_ENDPOINT"):  # huggingface_hub's default is the internet: never
        reason = ("no gitd URL to fetch the model from (HF_ENDPOINT): set plugins.inference.hub_url, or start the "
                  "endpoint through the API")
        log.error("%s", reason)
        status.set(phase="failed", reason=reason)
        return FAILED_EXIT
    try:
        engine = load(args, status)
    except Refused as exc:
        log.error("%s", exc)
        status.set(phase="failed", reason=str(exc))
        return FAILED_EXIT
    app = web.Application(client_max_size=8 << 20, middlewares=[_keyed(os.environ.get("GITD_ENGINE_KEY", ""))])
    app.add_routes(Api(engine).routes())

    async def ready(_: web.Application) -> None:
        status.set(phase="ready", ready_at=time.time())
        log.info("serving %s at %s on %s:%d (%s, context %d)", engine.name, args.revision[:12], args.host,
                 args.port, engine.device, engine.context_length)

    app.on_startup.append(ready)
    with contextlib.suppress(KeyboardInterrupt):
        web.run_app(app, host=args.host, port=args.port, print=None, access_log=None, handle_signals=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
