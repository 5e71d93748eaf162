"""``gitd mirror ...``: add, set, remove, list, sync and inspect mirrors.

Secrets never come on the command line (where ``ps`` and shell history see them): a
token or password comes from an environment variable (``--token-env``), a file
(``--token-file``) or standard input (``--token-stdin``), an ssh key from a file.
Nothing here prints them back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gitd import CliCommand, Duration, PluginError, RepoInfo

from .manage import PullSpec
from .remote import Credentials

if TYPE_CHECKING:
    from . import MirrorPlugin

TYPES = ("model", "dataset", "space", "code")


def commands(plugin: MirrorPlugin) -> list[CliCommand]:
    cli = MirrorCli(plugin)
    return [
        CliCommand("mirror", "add", "mirror a remote repository (pull), or add a push mirror with --push",
                   cli.add, cli.add_arguments),
        CliCommand("mirror", "set", "change a pull mirror's settings", cli.set, cli.set_arguments),
        CliCommand("mirror", "remove", "stop mirroring (the repository stays, and takes pushes again)",
                   cli.remove, cli.remove_arguments),
        CliCommand("mirror", "list", "list mirrors and how their last sync went", cli.list, cli.list_arguments),
        CliCommand("mirror", "sync", "queue a sync now (the daemon runs it)", cli.sync, cli.sync_arguments),
        CliCommand("mirror", "status", "a mirror's settings, progress and last results", cli.status,
                   cli.status_arguments),
    ]


def _duration(text: str) -> float:
    try:
        return float(Duration.parse(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _repo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repo", metavar="NS/NAME")
    parser.add_argument("--type", choices=TYPES, default="model", help="the repository's type (default: model)")


def _credential_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("credentials (stored encrypted; never printed)")
    group.add_argument("--username", help="the user name for HTTP(S) remotes (default: git)")
    group.add_argument("--token-env", metavar="VAR", help="read the token or password from this environment variable")
    group.add_argument("--token-file", metavar="FILE", type=Path, help="read the token or password from this file")
    group.add_argument("--token-stdin", action="store_true", help="read the token or password from standard input")
    group.add_argument("--ssh-key", metavar="FILE", type=Path, help="a private key for ssh remotes")


def _credentials(args: argparse.Namespace) -> Credentials | None:
    sources = [bool(args.token_env), bool(args.token_file), bool(args.token_stdin)]
    if sum(sources) > 1:
        raise PluginError("give the token one way: --token-env, --token-file or --token-stdin")
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise PluginError(f"the environment variable {args.token_env} is not set")
    elif args.token_file:
        token = args.token_file.read_text().strip()
    elif args.token_stdin:
        token = sys.stdin.readline().strip()
    key = args.ssh_key.read_text() if args.ssh_key else None
    if token is None and key is None and not args.username:
        return None
    return Credentials(args.username, token or None, key)


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


class MirrorCli:
    def __init__(self, plugin: MirrorPlugin):
        self.plugin = plugin
        self.context = plugin.context
        self.manager = plugin.manager

    def _repo(self, args: argparse.Namespace) -> RepoInfo:
        repo = self.context.find_repo(args.repo, args.type)
        if repo is None:
            raise PluginError(f"no {args.type} repository {args.repo}")
        return repo

    # -- add -----------------------------------------------------------------------------------
    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        _repo_arguments(p)
        p.add_argument("url", nargs="?", help="the remote's URL (http(s), ssh or file)")
        p.add_argument("--from-hub", metavar="URL", help="a Hugging Face-compatible hub (with --repo-id)")
        p.add_argument("--repo-id", metavar="ORG/NAME", help="the repository on the hub")
        p.add_argument("--push", action="store_true", help="a push mirror: push to URL after every push")
        p.add_argument("--interval", type=_duration, help="time between syncs (90s, 15m, 2h; 0: only when asked)")
        p.add_argument("--refs", nargs="+", metavar="PREFIX", help="ref prefixes to mirror (default: refs/heads/ "
                       "refs/tags/; refs/ for all)")
        p.add_argument("--refuse-force", action="store_true", help="refuse the upstream's forced updates")
        p.add_argument("--follow-force", action="store_true", help="follow the upstream's forced updates")
        p.add_argument("--no-prune", action="store_true", help="keep refs the upstream deleted")
        p.add_argument("--writable", action="store_true", help="let the mirror take pushes too")
        p.add_argument("--no-lfs", action="store_true", help="do not fetch (or push) Git LFS objects")
        p.add_argument("--lfs-url", metavar="URL", help="the remote's LFS endpoint, if not the usual one")
        p.add_argument("--private", action="store_true", help="create the repository private")
        p.add_argument("--replace", action="store_true", help="mirror into a repository that has branches already "
                       "(the upstream's replace them)")
        _credential_arguments(p)

    def add(self, args: argparse.Namespace) -> int:
        creds = _credentials(args)
        if args.push:
            if not args.url or args.from_hub:
                raise PluginError("a push mirror needs the URL to push to")
            repo = self._repo(args)
            mirror = self.manager.add_push(repo, args.url, credentials=creds, refs=args.refs,
                                           prune=not args.no_prune, lfs=not args.no_lfs, lfs_url=args.lfs_url,
                                           operator=True)
            print(f"push mirror {mirror.id}: {repo.full_name} -> {mirror.url} (after every push)")
            return 0
        if bool(args.from_hub) != bool(args.repo_id):
            raise PluginError("--from-hub and --repo-id go together")
        if args.from_hub and args.url:
            raise PluginError("give either a URL or --from-hub URL --repo-id ORG/NAME")
        if args.refuse_force and args.follow_force:
            raise PluginError("--refuse-force or --follow-force, not both")
        repo = self.context.find_repo(args.repo, args.type)
        created = repo is None
        if repo is None:
            repo = self.context.create_repo(args.repo, args.type, private=args.private)
        spec = PullSpec(url=args.url, hub_url=args.from_hub, hub_repo_id=args.repo_id, interval=args.interval,
                        refs=tuple(args.refs) if args.refs else None,
                        follow_force=False if args.refuse_force else True if args.follow_force else None,
                        prune=not args.no_prune, read_only=False if args.writable else None, lfs=not args.no_lfs,
                        lfs_url=args.lfs_url, credentials=creds, replace=args.replace)
        mirror = self.manager.add_pull(repo, spec, operator=True)
        every = f"every {int(mirror.interval)}s" if mirror.interval > 0 else "when asked (gitd mirror sync)"
        print(f"{'created ' if created else ''}{repo.full_name}: mirror of {mirror.url}, synced {every}; "
              f"the first sync is queued (gitd mirror status {repo.full_name})")
        return 0

    # -- set -----------------------------------------------------------------------------------
    def set_arguments(self, p: argparse.ArgumentParser) -> None:
        _repo_arguments(p)
        p.add_argument("--interval", type=_duration)
        access = p.add_mutually_exclusive_group()
        access.add_argument("--writable", action="store_true", help="take pushes too")
        access.add_argument("--read-only", action="store_true", help="refuse pushes")
        force = p.add_mutually_exclusive_group()
        force.add_argument("--follow-force", action="store_true")
        force.add_argument("--refuse-force", action="store_true")
        prune = p.add_mutually_exclusive_group()
        prune.add_argument("--prune", action="store_true", help="delete refs the upstream deleted")
        prune.add_argument("--no-prune", action="store_true", help="keep refs the upstream deleted")
        _credential_arguments(p)

    def set(self, args: argparse.Namespace) -> int:
        repo = self._repo(args)
        self.manager.set_pull(
            repo, interval=args.interval,
            read_only=True if args.read_only else False if args.writable else None,
            follow_force=True if args.follow_force else False if args.refuse_force else None,
            prune=True if args.prune else False if args.no_prune else None, credentials=_credentials(args))
        print(f"{repo.full_name}: mirror settings changed")
        return 0

    # -- remove --------------------------------------------------------------------------------
    def remove_arguments(self, p: argparse.ArgumentParser) -> None:
        _repo_arguments(p)
        p.add_argument("--push", metavar="ID", help="remove this push mirror (ids: gitd mirror status)")

    def remove(self, args: argparse.Namespace) -> int:
        print(self.manager.remove(self._repo(args), args.push))
        return 0

    # -- list ----------------------------------------------------------------------------------
    def list_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true")

    def list(self, args: argparse.Namespace) -> int:
        from .manage import pull_status, push_status

        rows: list[dict[str, Any]] = [pull_status(m) for m in self.plugin.records.pulls()]
        names = {m.repo_id: (m.repo, m.type) for m in self.plugin.records.pulls()}
        for m in self.plugin.records.pushes():
            if m.repo_id not in names:
                found = [r for r in self.context.repos() if r.id == m.repo_id]
                names[m.repo_id] = (found[0].full_name, found[0].type) if found else (f"#{m.repo_id}", "?")
            repo, kind = names[m.repo_id]
            rows.append({**push_status(m), "repo": repo, "type": kind})
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        if not rows:
            print("no mirrors")
            return 0
        table = [["REPO", "TYPE", "DIR", "URL", "STATE", "LAST SUCCESS", "ERROR"]]
        for r in rows:
            table.append([r["repo"], r["type"], r["direction"], r["url"], r["state"], r["last_success"] or "-",
                          (r["last_error"] or "")[:60]])
        _table(table)
        return 0

    # -- sync ----------------------------------------------------------------------------------
    def sync_arguments(self, p: argparse.ArgumentParser) -> None:
        _repo_arguments(p)
        p.add_argument("--wait", type=float, nargs="?", const=3600.0, metavar="SECONDS",
                       help="wait for the sync to finish (the daemon must be running)")

    def sync(self, args: argparse.Namespace) -> int:
        repo = self._repo(args)
        before = self.manager.pull(repo)
        self.plugin.scheduler.sync_now(repo)
        print(f"{repo.full_name}: sync queued")
        if args.wait is None:
            return 0
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.manager.pull(repo)
            if now.state != "running" and (now.last_attempt or 0) > (before.last_attempt or 0):
                if now.last_error:
                    print(f"{repo.full_name}: sync failed: {now.last_error}")
                    return 1
                print(f"{repo.full_name}: synced ({_summary(now.last_result)})")
                return 0
        print(f"{repo.full_name}: still syncing after {args.wait:.0f}s (gitd mirror status {repo.full_name})")
        return 1

    # -- status --------------------------------------------------------------------------------
    def status_arguments(self, p: argparse.ArgumentParser) -> None:
        _repo_arguments(p)
        p.add_argument("--json", action="store_true")

    def status(self, args: argparse.Namespace) -> int:
        status = self.manager.status(self._repo(args))
        if args.json:
            print(json.dumps(status, indent=2))
            return 0
        pull = status["pull"]
        if pull is None and not status["push"]:
            raise PluginError(f"{args.repo} has no mirrors")
        if pull is not None:
            source = f" ({pull['source']['repo_id']} on {pull['source']['hub']})" if pull["source"] else ""
            print(f"pull mirror of {pull['url']}{source}")
            every = f"every {int(pull['interval'])}s" if pull["interval"] > 0 else "when asked"
            print(f"  syncs {every}; refs {' '.join(pull['refs'])}; "
                  f"{'read-only' if pull['read_only'] else 'writable'}; forced updates "
                  f"{'followed' if pull['follow_force'] else 'refused'}; LFS {'on' if pull['lfs'] else 'off'}; "
                  f"credentials {'stored' if pull['credentials'] else 'none'}")
            state = pull["state"] + (f" ({pull['phase']}: {_summary(pull['progress'])})" if pull["phase"] else "")
            print(f"  state: {state}")
            print(f"  last attempt: {pull['last_attempt'] or '-'}; last success: {pull['last_success'] or '-'}; "
                  f"next: {pull['next_run'] or '-'}")
            if pull["last_result"]:
                print(f"  last result: {_summary(pull['last_result'])}")
            if pull["last_error"]:
                print(f"  error: {pull['last_error']}")
        for push in status["push"]:
            print(f"push mirror {push['id']} to {push['url']}: {push['state']}; last success "
                  f"{push['last_success'] or '-'}" + (f"; error: {push['last_error']}" if push["last_error"] else ""))
        return 0


def _summary(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(values.items())) or "-"
