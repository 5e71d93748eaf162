"""The operator's commands: ``gitd maintenance sweep``, ``gitd backup``, ``gitd restore`` and
``gitd doctor``. ``gitd.cli`` adds them to its parser (``register``); each works on a
running daemon's data directory."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitd.config import parse_duration
from gitd.errors import BadRequest, Unprocessable

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


def backup(parts_of: PartsOf) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        from gitd.ops.backup import Backup

        parts = parts_of(args)
        work = Backup(parts.data, parts.lfs.storage, jobs=args.jobs, say=print).run(Path(args.dest))
        report = asyncio.run(_closing(parts, work))
        for repo_id in report.created_empty:
            print(f"repository {repo_id} was created during the backup: it is in the backup as it was then, empty")
        for oid in report.lfs_missing:
            print(f"LFS object {oid} is recorded but the store does not have it: the backup records it as lost")
        print(report.summary())
        if report.failed:
            raise Unprocessable(f"{len(report.failed)} repositories could not be backed up: "
                                + "; ".join(f"{k}: {v}" for k, v in sorted(report.failed.items())))

    return run


def restore(parts_of: PartsOf) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        from gitd import datamode
        from gitd.compose import Parts
        from gitd.config import Config
        from gitd.datainit import init_data_dir
        from gitd.ops.restore import Restore, prepare
        from gitd.paths import DataDir, default_data_dir

        src = Path(args.source)
        data = DataDir(Path(args.data) if getattr(args, "data", None) else default_data_dir())
        prepare(src, data.root)
        init_data_dir(data.root)  # migrations and hook programs of this version
        config = Config.load(data.config_file)
        if not config.get_bool(datamode.SHARED_SETTING):
            datamode.make_private(data.root)
        parts = Parts(data, config)

        async def restore_then_check() -> tuple[Any, list]:
            report = await Restore(src, data, parts.lfs.storage, jobs=args.jobs, say=print).run()
            return report, await _doctor(parts).run(repair=False)

        report, findings = asyncio.run(_closing(parts, restore_then_check()))
        for oid in report.lfs_bad:
            print(f"LFS object {oid} is damaged in the backup: not restored ('gitd doctor --repair' marks it lost)")
        print(report.summary())
        for finding in findings:
            print(finding.line())
        print(f"restored into {data.root}; start the daemon on it: gitd --data {data.root} serve")
        if findings:
            raise Unprocessable(f"'gitd doctor' found {len(findings)} problem(s) in the restored data directory")

    return run


def _doctor(parts: Parts):
    from gitd.ops.doctor import Doctor

    cfg = parts.config
    return Doctor(parts.data, parts.store, parts.lfs.objects, parts.lfs.storage,
                  grace=cfg.get_duration("maintenance.grace"), lock_grace=cfg.get_duration("maintenance.lock_grace"),
                  say=print)


def doctor(parts_of: PartsOf) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        from gitd.ops.doctor import unrepaired

        parts = parts_of(args)
        findings = asyncio.run(_closing(parts, _doctor(parts).run(repair=args.repair)))
        for finding in findings:
            print(finding.line())
        left = unrepaired(findings)
        print(f"{len(findings)} problem(s) found, {len(findings) - len(left)} repaired")
        if left:
            hint = "" if args.repair else "; 'gitd doctor --repair' repairs what is safe to repair"
            raise Unprocessable(f"{len(left)} problem(s) remain{hint}")

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

    p = leaf(sub, "backup", backup(parts_of), "back up the data directory (online, consistent; incremental when "
             "DEST holds an earlier backup)")
    p.add_argument("dest", metavar="DEST", help="the backup directory")
    p.add_argument("--jobs", type=int, default=4, help="repositories copied at once (default 4)")
    p = leaf(sub, "restore", restore(parts_of), "make a new data directory (--data) from a backup")
    p.add_argument("source", metavar="SRC", help="a directory 'gitd backup' wrote")
    p.add_argument("--jobs", type=int, default=4, help="repositories restored at once (default 4)")
    p = leaf(sub, "doctor", doctor(parts_of), "check the database against the disk (repositories, refs, LFS "
             "objects, leftovers); exit 1 on problems")
    p.add_argument("--repair", action="store_true", help="repair what is safe to repair (nothing is deleted)")
