"""The operator's commands: ``gitd maintenance sweep``, ``gitd backup``, ``gitd restore`` and
``gitd doctor``. ``gitd.cli`` adds them to its parser (``register``); each works on a
running daemon's data directory."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gitd.config import parse_duration
from gitd.errors import BadRequest

if TYPE_CHECKING:
    from gitd.compose import Parts

PartsOf = Callable[[argparse.Namespace], "Parts"]


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


async def _closing(parts: Parts, work: Any) -> Any:
    try:
        return await work
    finally:
        if "lfs" in parts.__dict__:
            await parts.lfs.close()


def maintenance_sweep(parts_of: PartsOf) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        from gitd.ops.maintenance import sweep

        grace = _duration(args.grace) if args.grace is not None else None
        parts = parts_of(args)
        if grace is None:
            grace = parts.config.get_duration("maintenance.grace")
        lock_grace = min(grace, parts.config.get_duration("maintenance.lock_grace"))
        report = asyncio.run(_closing(parts, sweep(parts.data, parts.lfs.storage, grace, lock_grace=lock_grace,
                                                   dry_run=args.dry_run)))
        verb = "would remove" if args.dry_run else "removed"
        for item in report.leftovers:
            print(f"{verb} {item.kind} {item.path} ({item.size} bytes, untouched for {item.idle:.0f}s)")
        print(report.summary())

    return run


def register(sub: argparse._SubParsersAction, leaf: Callable[..., argparse.ArgumentParser],
             group: Callable[..., argparse._SubParsersAction], parts_of: PartsOf) -> None:
    """Add the commands to ``gitd``'s parser (``leaf``/``group`` are its helpers)."""
    maintenance = group("maintenance", "sweep what interrupted work left behind")
    p = leaf(maintenance, "sweep", maintenance_sweep(parts_of),
             "remove leftovers of killed pushes, uploads and repository changes (the daemon does it every "
             "[maintenance] interval)")
    p.add_argument("--grace", metavar="DURATION",
                   help="only what nothing was written to for this long (default: [maintenance] grace; e.g. 2h, 0)")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
