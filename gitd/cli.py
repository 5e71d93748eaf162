"""The ``gitd`` command line. Every command takes ``--data DIR`` (or ``GITD_DATA``) and
works while the daemon runs: the store is SQLite in WAL mode.

Errors are printed to stderr as one line, with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from gitd import __version__, datamode, eventloop
from gitd.compose import Parts
from gitd.config import Config, ConfigError, split_hostport
from gitd.errors import GitdError, NotFound
from gitd.jobs.queue import ALL_PLUGINS
from gitd.names import REPO_TYPES, SPACE_SDKS, check_account_name, split_full_name
from gitd.paths import DataDir, default_data_dir
from gitd.plugins.context import PluginError
from gitd.plugins.host import PluginHost


class CLIError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"gitd: error: {message} (see '{self.prog} --help')\n")


# -- helpers ------------------------------------------------------------------------------------
def _data_dir(args: argparse.Namespace) -> DataDir:
    return DataDir(Path(args.data) if getattr(args, "data", None) else default_data_dir())


def _parts(args: argparse.Namespace) -> Parts:
    """The collaborators a command may use, each built on first use only."""
    data = _data_dir(args)
    if not data.is_initialised():
        raise CLIError(f"{data.root} is not a gitd data directory; run 'gitd init {data.root}' first")
    return Parts(data, Config.load(data.config_file))


def _table(rows: Sequence[Sequence[object]]) -> None:
    if not rows:
        return
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _repo(s: Parts, full_name: str, repo_type: str | None):
    ns, name = split_full_name(full_name)
    if repo_type is not None:
        return s.repo_rows.get(repo_type, ns, name)
    found = [r for t in REPO_TYPES if (r := s.repo_rows.find(t, ns, name)) is not None]
    if not found:
        raise NotFound(f"no repository {full_name}")
    if len(found) > 1:
        raise CLIError(f"{full_name} exists as {', '.join(r.type for r in found)}; pick one with --type")
    return found[0]


# -- commands -----------------------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> None:
    from gitd.datainit import host_key_fingerprint, init_data_dir

    root = DataDir(Path(args.dir)).root if args.dir else _data_dir(args).root
    for line in init_data_dir(root):
        print(line)
    if not Config.load(DataDir(root).config_file).get_bool(datamode.SHARED_SETTING):
        changed = datamode.make_private(root)
        if changed:
            print(f"made {changed} files and directories under {root} private to their owner")
    print(f"data directory ready: {root}")
    print(f"SSH host key fingerprint: {host_key_fingerprint(DataDir(root))}")


def cmd_serve(args: argparse.Namespace) -> None:
    from gitd.datainit import host_key_fingerprint, init_data_dir
    from gitd.server import serve

    data = _data_dir(args)
    # `kill -USR1 <pid>` writes every thread's stack to stderr: for a daemon that hangs.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    if args.http:
        split_hostport(args.http, 8080)  # a bad address fails before anything is written
    if not Config.load(data.config_file).get_bool(datamode.SHARED_SETTING) \
            and not datamode.is_empty_or_missing(data.root):
        datamode.check_private(data.root)  # before anything is written; an empty directory is new
    init_data_dir(data.root)
    config = Config.load(data.config_file)
    if args.http:
        config.set("server.http", args.http)
    if args.ssh is not None:
        config.set("server.ssh", args.ssh)
    split_hostport(config.get_str("server.http"), 8080)  # a bad address fails here, as one line
    loop_factory = eventloop.loop_factory(config.get_str("server.event_loop"))  # and so does an unknown loop
    logging.basicConfig(
        level=getattr(logging, config.get_str("server.log_level").upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("gitd").info("data directory %s; SSH host key %s", data.root, host_key_fingerprint(data))
    parts = Parts(data, config)
    eventloop.run(serve(parts, http=config.get_str("server.http")), loop_factory)


def cmd_user_add(args: argparse.Namespace) -> None:
    s = _parts(args)
    user = s.accounts.create_user(check_account_name(args.name), email=args.email, is_admin=args.admin)
    print(f"created user {user.name}{' (site admin)' if user.is_admin else ''}")


def cmd_user_list(args: argparse.Namespace) -> None:
    s = _parts(args)
    _table([("NAME", "EMAIL", "ADMIN")] + [(u.name, u.email or "-", "yes" if u.is_admin else "no")
                                           for u in s.accounts.list("user")])


def cmd_user_passwd(args: argparse.Namespace) -> None:
    from gitd.access.passwords import Passwords
    from gitd.cli_passwd import PasswordInputError, read_password

    s = _parts(args)
    user = s.accounts.get(args.name, "user")
    try:
        password = read_password(args.stdin)
    except PasswordInputError as exc:
        raise CLIError(str(exc))
    Passwords(s.accounts).set(user, password)
    print(f"password set for {user.name}")


def cmd_token_create(args: argparse.Namespace) -> None:
    s = _parts(args)
    user = s.accounts.get(args.user, "user")
    name = args.name
    if not name:
        taken = {t.name for t in s.accounts.tokens(user)}
        name = next(f"token-{n}" for n in range(1, len(taken) + 2) if f"token-{n}" not in taken)
    print(s.auth.create_token(user, name, args.scope))


def cmd_token_list(args: argparse.Namespace) -> None:
    s = _parts(args)
    user = s.accounts.get(args.user, "user")
    _table([("NAME", "SCOPE", "CREATED", "LAST USED")]
           + [(t.name, t.scope, t.created_at, t.last_used_at or "never") for t in s.accounts.tokens(user)])


def cmd_token_revoke(args: argparse.Namespace) -> None:
    s = _parts(args)
    s.accounts.revoke_token(s.accounts.get(args.user, "user"), args.name)
    print(f"revoked token {args.name} of {args.user}")


def cmd_sshkey_add(args: argparse.Namespace) -> None:
    from gitd.ssh.keys import SSHKeys

    s = _parts(args)
    user = s.accounts.get(args.user, "user")
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8", errors="replace")
    key = SSHKeys(s.accounts).add(user, text, args.title)
    print(f"added SSH key {key.fingerprint} for {user.name}")


def cmd_sshkey_list(args: argparse.Namespace) -> None:
    from gitd.ssh.keys import SSHKeys

    s = _parts(args)
    keys = SSHKeys(s.accounts).list(s.accounts.get(args.user, "user"))
    _table([("FINGERPRINT", "TYPE", "TITLE", "ADDED")]
           + [(k.fingerprint, k.public_key.split()[0], k.title or "-", k.created_at) for k in keys])


def cmd_sshkey_remove(args: argparse.Namespace) -> None:
    from gitd.ssh.keys import SSHKeys

    s = _parts(args)
    SSHKeys(s.accounts).remove(s.accounts.get(args.user, "user"), args.fingerprint)
    print(f"removed SSH key {args.fingerprint} of {args.user}")


def cmd_org_create(args: argparse.Namespace) -> None:
    s = _parts(args)
    org = s.accounts.create_org(check_account_name(args.org), s.accounts.get(args.owner, "user"))
    print(f"created organisation {org.name} (admin: {args.owner})")


def cmd_org_add_member(args: argparse.Namespace) -> None:
    s = _parts(args)
    org = s.accounts.get(args.org, "org")
    s.accounts.set_member(org, s.accounts.get(args.user, "user"), args.role)
    print(f"{args.user} is now a {args.role} member of {org.name}")


def cmd_org_remove_member(args: argparse.Namespace) -> None:
    s = _parts(args)
    s.accounts.remove_member(s.accounts.get(args.org, "org"), s.accounts.get(args.user, "user"))
    print(f"removed {args.user} from {args.org}")


def cmd_org_list(args: argparse.Namespace) -> None:
    s = _parts(args)
    rows: list[tuple[str, str, str]] = [("ORG", "MEMBER", "ROLE")]
    for org in s.accounts.list("org"):
        rows += [(org.name, user.name, role) for user, role in s.accounts.members(org)]
    _table(rows)


def cmd_repo_create(args: argparse.Namespace) -> None:
    s = _parts(args)
    ns, name = split_full_name(args.repo)
    if args.sdk is not None and args.type != "space":
        raise CLIError("--sdk is for spaces (--type space)")
    owner = s.accounts.get(ns)
    repo = asyncio.run(s.seeder.create(owner, name, args.type, private=args.private, author=owner.name,
                                       sdk=args.sdk, empty=args.empty))
    first = "empty" if args.empty else "with a first commit (.gitattributes)"
    print(f"created {repo.type} {repo.full_name} ({'private' if repo.private else 'public'}, {first})")


def cmd_repo_list(args: argparse.Namespace) -> None:
    s = _parts(args)
    _table([("TYPE", "REPOSITORY", "VISIBILITY", "DEFAULT BRANCH")]
           + [(r.type, r.full_name, "private" if r.private else "public", r.default_branch)
              for r in s.repo_rows.list(repo_type=args.type, order="r.type, a.name, r.name")])


def cmd_repo_delete(args: argparse.Namespace) -> None:
    s = _parts(args)
    repo = _repo(s, args.repo, args.type)
    s.repos.delete(repo)
    print(f"deleted {repo.type} {repo.full_name}")


def cmd_repo_set(args: argparse.Namespace) -> None:
    s = _parts(args)
    repo = _repo(s, args.repo, args.type)
    repo = s.repos.set_private(repo, args.private)
    print(f"{repo.type} {repo.full_name} is now {'private' if repo.private else 'public'}")


def cmd_operator(args: argparse.Namespace) -> None:
    from gitd.operator.run import operator_modules, run

    modules = operator_modules(_parts(args).plugins)
    if args.list:
        for module in modules:
            print(module)
        return
    if not modules:
        raise CLIError("no enabled plugin ships an operator (PACKAGE.operator.handlers)")
    if not args.namespace and not args.all_namespaces:
        raise CLIError("name the namespaces to watch (--namespace NS, repeatable) or --all-namespaces")
    try:
        import kopf  # noqa: F401
    except ImportError:
        raise CLIError("the operator needs kopf and kubernetes: install gitd with the 'operator' extra") from None
    run(modules, args.namespace or [], args.all_namespaces)


def cmd_jobs_list(args: argparse.Namespace) -> None:
    s = _parts(args)
    jobs = s.jobs.list(state="failed" if args.failed else None, limit=args.limit)
    _table([("ID", "STATE", "HOOK", "PLUGIN", "REPO", "ATTEMPTS", "UPDATED", "PROGRESS", "ERROR")]
           + [(j.id, j.state, j.hook.removeprefix("gitd_"), "(all)" if j.plugin == ALL_PLUGINS else j.plugin,
               j.repo_id or "-", f"{j.attempts}/{j.max_attempts}", j.updated_at, j.progress or "",
               (j.last_error or "").splitlines()[-1:][0] if j.last_error else "") for j in jobs])


def cmd_jobs_retry(args: argparse.Namespace) -> None:
    s = _parts(args)
    job = s.jobs.retry(args.id)
    print(f"job {job.id} queued again")


def cmd_lfs_gc(args: argparse.Namespace) -> None:
    from gitd.lfs.maintenance import gc, parse_duration

    try:
        grace = parse_duration(args.grace)
    except ValueError as exc:
        raise CLIError(str(exc))
    s = _parts(args)
    report = asyncio.run(_closing(s, gc(s.lfs.objects, s.lfs.storage, grace, dry_run=args.dry_run)))
    verb = "would delete" if args.dry_run else "deleted"
    for oid in report.deleted:
        print(f"{verb} {oid}")
    for oid in report.orphans:
        print(f"{verb} unrecorded {oid}")
    print(f"{verb} {len(report.deleted)} unreferenced object(s), {report.deleted_bytes} bytes; "
          f"{len(report.orphans)} unrecorded object(s); {report.incomplete} abandoned upload(s)")


def cmd_lfs_fsck(args: argparse.Namespace) -> None:
    from gitd.lfs.maintenance import fsck

    s = _parts(args)

    def progress(oid: str, verdict: str) -> None:
        if verdict != "ok":
            print(f"{verdict} {oid}", flush=True)

    report = asyncio.run(_closing(s, fsck(s.lfs.objects, s.lfs.storage, progress)))
    for oid in report.restored:
        print(f"restored {oid}")
    print(f"checked {report.checked} object(s): {len(report.missing)} missing, {len(report.corrupt)} corrupt")
    if not report.ok:
        raise CLIError(f"{len(report.missing) + len(report.corrupt)} LFS object(s) are missing or corrupt; "
                       "they answer 410 until someone pushes them again")


async def _closing(s: Parts, work):
    try:
        return await work
    finally:
        await s.lfs.close()


# -- parser -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    data_opt = argparse.ArgumentParser(add_help=False)
    data_opt.add_argument("--data", metavar="DIR", default=argparse.SUPPRESS,
                          help="data directory (default: $GITD_DATA or ~/.local/share/gitd)")

    parser = _Parser(prog="gitd", description="A self-hosted hub for LLM assets built around a Git server.")
    parser.add_argument("--version", action="version", version=f"gitd {__version__}")
    parser.add_argument("--data", metavar="DIR", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def leaf(container, name: str, func: Callable[[argparse.Namespace], None], help: str):
        p = container.add_parser(name, parents=[data_opt], help=help, description=help)
        p.set_defaults(func=func)
        return p

    def group(name: str, help: str):
        p = sub.add_parser(name, parents=[data_opt], help=help, description=help)
        return p.add_subparsers(dest=f"{name}_command", required=True, parser_class=_Parser)

    p = leaf(sub, "init", cmd_init, "create a data directory (never destroys existing data)")
    p.add_argument("dir", nargs="?", help="the data directory to create")
    p = leaf(sub, "serve", cmd_serve, "run the daemon in the foreground")
    p.add_argument("--http", metavar="HOST:PORT", help="Smart HTTP/LFS/API address (default 127.0.0.1:8080)")
    p.add_argument("--ssh", metavar="HOST:PORT", help="SSH address (default 127.0.0.1:2222; '' disables)")

    users = group("user", "manage users")
    p = leaf(users, "add", cmd_user_add, "add a user")
    p.add_argument("name")
    p.add_argument("--admin", action="store_true", help="make the user a site admin")
    p.add_argument("--email")
    leaf(users, "list", cmd_user_list, "list users")
    from gitd.cli_passwd import add_passwd_command

    add_passwd_command(users, leaf, cmd_user_passwd)

    tokens = group("token", "manage API tokens")
    p = leaf(tokens, "create", cmd_token_create, "create a token and print it (it is stored hashed)")
    p.add_argument("user")
    p.add_argument("--name")
    p.add_argument("--scope", choices=("read", "write"), default="write")
    p = leaf(tokens, "list", cmd_token_list, "list a user's tokens")
    p.add_argument("user")
    p = leaf(tokens, "revoke", cmd_token_revoke, "revoke a token")
    p.add_argument("user")
    p.add_argument("name")

    sshkeys = group("sshkey", "manage users' SSH public keys")
    p = leaf(sshkeys, "add", cmd_sshkey_add, "register an SSH public key for a user (one key belongs to one user)")
    p.add_argument("user")
    p.add_argument("file", metavar="FILE|-", help="the public key file (e.g. ~/.ssh/id_ed25519.pub), or - for stdin")
    p.add_argument("--title", help="a label for the key (default: the key's comment)")
    p = leaf(sshkeys, "list", cmd_sshkey_list, "list a user's SSH keys")
    p.add_argument("user")
    p = leaf(sshkeys, "remove", cmd_sshkey_remove, "remove an SSH key")
    p.add_argument("user")
    p.add_argument("fingerprint", help="as 'gitd sshkey list' shows it (SHA256:...)")

    orgs = group("org", "manage organisations")
    p = leaf(orgs, "create", cmd_org_create, "create an organisation")
    p.add_argument("org")
    p.add_argument("--owner", required=True, help="user who becomes the first admin member")
    p = leaf(orgs, "add-member", cmd_org_add_member, "add a member, or change a member's role")
    p.add_argument("org")
    p.add_argument("user")
    p.add_argument("--role", choices=("read", "write", "admin"), required=True)
    p = leaf(orgs, "remove-member", cmd_org_remove_member, "remove a member")
    p.add_argument("org")
    p.add_argument("user")
    leaf(orgs, "list", cmd_org_list, "list organisations and their members")

    repos = group("repo", "manage repositories")
    p = leaf(repos, "create", cmd_repo_create, "create a repository")
    p.add_argument("repo", metavar="NS/NAME")
    p.add_argument("--type", choices=REPO_TYPES, default="model")
    p.add_argument("--private", action="store_true")
    p.add_argument("--empty", action="store_true",
                   help="no first commit: for pushing an existing history with git")
    p.add_argument("--sdk", choices=SPACE_SDKS, help="a space's SDK, named in its README card")
    p = leaf(repos, "list", cmd_repo_list, "list repositories")
    p.add_argument("--type", choices=REPO_TYPES)
    p = leaf(repos, "delete", cmd_repo_delete, "delete a repository and its data")
    p.add_argument("repo", metavar="NS/NAME")
    p.add_argument("--type", choices=REPO_TYPES)
    p = leaf(repos, "set", cmd_repo_set, "change a repository's visibility")
    p.add_argument("repo", metavar="NS/NAME")
    p.add_argument("--type", choices=REPO_TYPES)
    vis = p.add_mutually_exclusive_group(required=True)
    vis.add_argument("--private", dest="private", action="store_true")
    vis.add_argument("--public", dest="private", action="store_false")

    lfs = group("lfs", "maintain Git LFS storage")
    p = leaf(lfs, "gc", cmd_lfs_gc, "delete LFS objects no repository holds any more")
    p.add_argument("--grace", default="24h", metavar="DURATION",
                   help="keep objects stored or linked within this long (default 24h; e.g. 30m, 7d, 0)")
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    leaf(lfs, "fsck", cmd_lfs_fsck, "re-hash stored LFS objects; report (and exit 1 on) missing or corrupt ones")

    jobs = group("jobs", "inspect and retry background jobs")
    p = leaf(jobs, "list", cmd_jobs_list, "list recent jobs")
    p.add_argument("--failed", action="store_true", help="only jobs that gave up")
    p.add_argument("--limit", type=int, default=100)
    p = leaf(jobs, "retry", cmd_jobs_retry, "queue a job again")
    p.add_argument("id", type=int)

    p = leaf(sub, "operator", cmd_operator, "run the Kubernetes operator of every plugin that ships one (kopf)")
    p.add_argument("--namespace", action="append", metavar="NS", help="a namespace to watch (repeatable)")
    p.add_argument("--all-namespaces", action="store_true", help="watch the whole cluster")
    p.add_argument("--list", action="store_true", help="only print the operator modules it would run")

    from gitd.ops import commands as ops_commands  # backup, restore, doctor, maintenance

    ops_commands.register(sub, leaf, group, _parts)
    return parser


def add_plugin_commands(parser: argparse.ArgumentParser, argv: Sequence[str],
                        plugins: PluginHost | None = None) -> None:
    """Add the plugins' subcommands (``gitd_cli_commands``) when the command line names one
    that is not gitd's own: plugins are loaded only then, from the data directory's config."""
    words = [a for a in argv if not a.startswith("-")]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if words and words[0] in sub.choices:
        return
    data_arg = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--data"), None)
    data = DataDir(Path(data_arg)) if data_arg else DataDir(default_data_dir())
    if not data.is_initialised():
        return
    from gitd.plugins.contrib import CliCommand

    if plugins is None:
        plugins = Parts(data, Config.load(data.config_file)).plugins
    groups: dict[str, argparse._SubParsersAction] = {}
    for plugin, commands in plugins.collect("gitd_cli_commands"):
        for command in commands:
            if not isinstance(command, CliCommand):
                continue
            if command.group in sub.choices and command.group not in groups:
                logging.getLogger("gitd").warning("plugin %s: 'gitd %s' is gitd's own command; not added",
                                                  plugin, command.group)
                continue
            if command.group not in groups:
                p = sub.add_parser(command.group, help=f"(plugin {plugin})", description=f"commands of plugin {plugin}")
                groups[command.group] = p.add_subparsers(dest=f"{command.group}_command", required=True,
                                                         parser_class=_Parser)
            leaf = groups[command.group].add_parser(command.name, help=command.help, description=command.help)
            leaf.add_argument("--data", metavar="DIR", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
            if command.arguments is not None:
                command.arguments(leaf)
            leaf.set_defaults(func=_plugin_runner(command))


def _plugin_runner(command) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        status = command.run(args)
        if status:
            raise SystemExit(int(status))

    return run


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "failed"


def main(argv: Sequence[str] | None = None, *, plugins: PluginHost | None = None) -> int:
    """Run one command; errors are one line on stderr and a non-zero exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        add_plugin_commands(parser, argv, plugins)
    except Exception as exc:  # a broken plugin must not take gitd's own commands down
        print(f"gitd: warning: plugin commands unavailable: {_one_line(str(exc))}", file=sys.stderr)
    args = parser.parse_args(argv)  # usage errors exit 2 with one line (see _Parser.error)
    umask = os.umask(datamode.PRIVATE_UMASK)  # what any command writes into DATA is the owner's only
    try:
        if Config.load(_command_root(args).config_file).get_bool(datamode.SHARED_SETTING):
            os.umask(umask)
        args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if isinstance(exc, GitdError):
            message = exc.message
        elif isinstance(exc, CLIError | ConfigError | OSError | PluginError):
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {exc}"
            logging.getLogger("gitd").debug("unexpected error", exc_info=True)
        print(f"gitd: error: {_one_line(message)}", file=sys.stderr)
        return 1
    finally:
        os.umask(umask)  # for callers that run commands in-process
    return 0


def _command_root(args: argparse.Namespace) -> DataDir:
    """The data directory a command works on (``gitd init DIR`` names its own)."""
    return DataDir(Path(args.dir)) if getattr(args, "dir", None) else _data_dir(args)

if __name__ == "__main__":
    sys.exit(main())
