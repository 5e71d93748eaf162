"""What a fine-tune job is asked to do: its training configuration, checked before it is queued
(every error names the field and what it accepts)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from gitd.plugin_api import HTTPError

METHODS = ("full", "lora")


@dataclass(frozen=True)
class TrainConfig:
    method: str = "lora"
    epochs: int = 1
    learning_rate: float = 2e-4
    max_steps: int = 0          # 0: as many as the epochs take
    batch_size: int = 4
    max_length: int = 256
    text_column: str = ""       # "": text, content, messages, or instruction + output
    lora_r: int = 8
    lora_alpha: int = 16
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_BOUNDS: dict[str, tuple[float, float]] = {
    "epochs": (1, 1000), "max_steps": (0, 10_000_000), "batch_size": (1, 4096), "max_length": (8, 1 << 20),
    "lora_r": (1, 4096), "lora_alpha": (1, 1 << 16), "seed": (0, 2**31 - 1),
}


def parse_config(raw: Any) -> TrainConfig:
    """A ``TrainConfig`` from a JSON object; HTTPError 400 naming the bad field."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise HTTPError(400, "the training config is a JSON object")
    known = set(TrainConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise HTTPError(400, f"unknown config field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "method":
            if value not in METHODS:
                raise HTTPError(400, f"config.method: full or lora, not {value!r}")
        elif name == "text_column":
            if not isinstance(value, str) or len(value) > 256:
                raise HTTPError(400, "config.text_column: a column name")
        elif name == "learning_rate":
            if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
                    or not 0 < value <= 1):
                raise HTTPError(400, f"config.learning_rate: a number in (0, 1], not {value!r}")
            value = float(value)
        else:
            low, high = _BOUNDS[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise HTTPError(400, f"config.{name}: a whole number from {low:.0f} to {high:.0f}, not {value!r}")
        values[name] = value
    return TrainConfig(**values)
