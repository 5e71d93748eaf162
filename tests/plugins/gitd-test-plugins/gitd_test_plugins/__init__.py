"""Plugins for gitd's tests. Shared helpers: push options and record files."""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from gitd import PushEvent


def option(event: PushEvent, name: str) -> str | None:
    """The value of push option ``name=value`` (or "" for a bare ``name``), else None."""
    for opt in event.push_options:
        key, _, value = opt.partition("=")
        if key == name:
            return value
    return None


def record_dir(settings: dict[str, Any]) -> Path | None:
    value = settings.get("dir")
    return Path(value) if value else None


def write_record(directory: Path | None, kind: str, data: dict[str, Any]) -> None:
    """One JSON file per call, written atomically, named ``<kind>-<random>.json``."""
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    data = {**data, "thread": threading.current_thread().name, "pid": os.getpid()}
    final = directory / f"{kind}-{uuid.uuid4().hex}.json"
    tmp = final.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(final)


def event_dict(event: PushEvent) -> dict[str, Any]:
    return {
        "repo": {"namespace": event.repo.namespace, "name": event.repo.name, "full_name": event.repo.full_name,
                 "type": event.repo.type, "private": event.repo.private, "path": str(event.repo.path),
                 "default_branch": event.repo.default_branch},
        "pusher": event.pusher,
        "via": event.via,
        "updates": [list(u) for u in event.updates],
        "push_options": list(event.push_options),
    }
