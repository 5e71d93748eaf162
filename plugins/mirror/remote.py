"""Remotes: URLs (never with credentials in them), credentials (stored encrypted), and how
git, the LFS client and ssh get them.

* An HTTP(S) URL given with ``user:password@`` has the password taken out and stored as
  the mirror's credentials; the URL kept (and shown, and logged) has no password.
* git gets HTTP credentials as ``http.<url>.extraHeader`` through ``GIT_CONFIG_*``
  variables (its environment, never its arguments), scoped to the remote's URL;
  ``transfer.credentialsInUrl=die`` (``context.git_command``) refuses any URL with one.
* ssh gets a private key through a file of mode 0600 in a private temporary folder that
  lives as long as the command, ``BatchMode`` (never a prompt) and a known-hosts file of
  the mirror's own: the host key is accepted on first contact and checked ever after.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from gitd import PluginError, PluginSecrets

SCHEMES = ("http", "https", "ssh", "file")
_SCP_LIKE = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9][A-Za-z0-9._-]*)@)?(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\])"
    r":(?P<path>[^/].*|/.*)$")
_URL_IN_TEXT = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/@\s]*@)?(?P<rest>[^\s'\"]*)", re.I)


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # a password or an access token
    ssh_key: str | None = field(default=None, repr=False)  # a private key (OpenSSH format)

    def __bool__(self) -> bool:
        return bool(self.password or self.ssh_key)

    def seal(self, secrets: PluginSecrets) -> str | None:
        if not self and not self.username:
            return None
        return secrets.encrypt(json.dumps({"username": self.username, "password": self.password,
                                           "ssh_key": self.ssh_key}))

    @classmethod
    def unseal(cls, secrets: PluginSecrets, sealed: str | None) -> Credentials:
        if not sealed:
            return cls()
        data = json.loads(secrets.decrypt(sealed))
        return cls(data.get("username"), data.get("password"), data.get("ssh_key"))

    def authorization(self) -> str | None:
        """The HTTP ``Authorization`` value for git and LFS (Basic, as git sends it)."""
        if not self.password:
            return None
        pair = f"{self.username or 'git'}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def bearer(self) -> str | None:
        """The ``Authorization`` value for Hub API calls (a token as Bearer)."""
        if not self.password:
            return None
        if self.username:
            return self.authorization()
        return f"Bearer {self.password}"


@dataclass(frozen=True)
class Remote:
    url: str  # without credentials
    scheme: str  # http, https, ssh, file

    @property
    def is_http(self) -> bool:
        return self.scheme in ("http", "https")


def parse_remote(url: str) -> tuple[Remote, Credentials]:
    """The remote ``url`` names, and the credentials it carried (taken out of it).
    PluginError for what is not an http(s), ssh or file URL (or scp-like ssh address)."""
    url = url.strip()
    if not url or any(c in url for c in "\0\n\r\t ") or url.startswith("-"):
        raise PluginError(f"not a remote URL: {redact(url)!r}")
    match = _SCP_LIKE.match(url) if "://" not in url else None
    if match is not None:
        return Remote(url, "ssh"), Credentials()
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise PluginError(f"{redact(url)}: mirrors fetch over http(s), ssh or file URLs, not {scheme or 'this'}")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise PluginError(f"{url}: a file URL names an absolute path on this server (file:///srv/repo.git)")
        return Remote(urlunsplit(("file", "", parts.path, "", "")), "file"), Credentials()
    if not parts.hostname or not re.match(r"^[a-z0-9\[]", parts.hostname) or \
            (parts.username and not re.match(r"^[A-Za-z0-9]", unquote(parts.username))):
        raise PluginError(f"{redact(url)}: not a usable host")
    creds = Credentials()
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port:
        netloc += f":{parts.port}"
    if scheme == "ssh":
        if parts.username:
            netloc = f"{quote(unquote(parts.username), safe='')}@{netloc}"
        if parts.password:
            raise PluginError("ssh URLs take a key (--ssh-key), not a password in the URL")
    elif parts.username or parts.password:
        creds = Credentials(unquote(parts.username or "") or None, unquote(parts.password or "") or None)
    if parts.fragment:
        raise PluginError(f"{redact(url)}: a remote URL has no #fragment")
    return Remote(urlunsplit((scheme, netloc, parts.path, parts.query, "")), scheme), creds


def redact(text: str) -> str:
    """``text`` with the user information and query of every URL in it taken out (for
    error messages and logs: an LFS download link may carry a signature in its query)."""
    def clean(m: re.Match[str]) -> str:
        rest = m.group("rest")
        return m.group("scheme") + rest.split("?", 1)[0]

    return _URL_IN_TEXT.sub(clean, text)


def lfs_endpoint(remote: Remote) -> str | None:
    """The remote's Git LFS endpoint, as git-lfs derives it (None for ssh: asked of the
    server with git-lfs-authenticate; file remotes keep objects in the repository)."""
    if not remote.is_http:
        return None
    base = remote.url.split("?", 1)[0].rstrip("/")
    return (base if base.endswith(".git") else base + ".git") + "/info/lfs"


def check_public_host(url: str) -> None:
    """PluginError if ``url``'s host is (or resolves to) a loopback, private, link-local or
    otherwise non-public address: what a mirror configured through the API may not reach
    unless ``allow_local_networks`` is set. Checked when the mirror is configured, before
    every sync, and for every LFS link and redirect it follows."""
    remote, _ = parse_remote(url)
    if remote.scheme == "file":
        raise PluginError("file URLs can only be mirrored by the server's operator (gitd mirror add)")
    host = _host_of(remote)
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        raise PluginError(f"{host}: the host name does not resolve") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not address.is_global:
            raise PluginError(f"{host} is a local or private address; this server does not mirror from "
                              "its own networks through the API")


def _host_of(remote: Remote) -> str:
    if "://" in remote.url:
        return urlsplit(remote.url).hostname or ""
    match = _SCP_LIKE.match(remote.url)
    return match.group("host").strip("[]") if match else ""


def ssh_target(remote: Remote) -> tuple[list[str], str]:
    """(ssh arguments naming the host: ``[-p PORT] [user@]host``, the repository path)."""
    if "://" in remote.url:
        parts = urlsplit(remote.url)
        host = (f"{parts.username}@" if parts.username else "") + (parts.hostname or "")
        return ([*(["-p", str(parts.port)] if parts.port else []), host], unquote(parts.path))
    match = _SCP_LIKE.match(remote.url)
    assert match is not None
    host = (f"{match.group('user')}@" if match.group("user") else "") + match.group("host").strip("[]")
    return [host], match.group("path")


@dataclass
class GitAccess:
    """What one git command needs to reach a remote: extra environment, and the known-hosts
    text to keep afterwards (ssh accepts a host's key on first contact)."""

    env: dict[str, str]
    ssh: list[str]  # the ssh command line (for git-lfs-authenticate), or []
    known_hosts: Path | None = None

    def known_hosts_text(self) -> str | None:
        if self.known_hosts is None or not self.known_hosts.exists():
            return None
        return self.known_hosts.read_text(errors="replace")


@contextlib.contextmanager
def git_access(remote: Remote, creds: Credentials, *, known_hosts: str | None, timeout: float,
               proxy: str | None = None, restricted: bool = False) -> Iterator[GitAccess]:
    """The environment a git command needs for ``remote`` with ``creds``; files it needs
    (an ssh key) live in a private temporary folder removed when the block ends.
    ``restricted`` (a mirror configured through the API): git follows no redirect, which
    could lead it into the server's own networks."""
    env: dict[str, str] = {}
    config: list[tuple[str, str]] = []
    folder = Path(tempfile.mkdtemp(prefix="gitd-mirror-"))
    os.chmod(folder, 0o700)
    try:
        ssh: list[str] = []
        hosts: Path | None = None
        if remote.is_http:
            header = creds.authorization()
            if header is not None:
                config.append((f"http.{remote.url}.extraHeader", f"Authorization: {header}"))
            if proxy:
                config.append(("http.proxy", proxy))
            if restricted:
                config.append(("http.followRedirects", "false"))
            env["GIT_HTTP_LOW_SPEED_LIMIT"] = "1"
            env["GIT_HTTP_LOW_SPEED_TIME"] = str(max(1, int(timeout)))
        elif remote.scheme == "ssh":
            hosts = folder / "known_hosts"
            hosts.write_text(known_hosts or "")
            ssh = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
                   "-o", f"UserKnownHostsFile={hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                   "-o", f"ConnectTimeout={max(1, int(timeout))}", "-o", "ServerAliveInterval=15",
                   "-o", f"ServerAliveCountMax={max(1, int(timeout) // 15)}", "-o", "IdentitiesOnly=yes"]
            if creds.ssh_key:
                key = folder / "key"
                fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(creds.ssh_key.strip() + "\n")
                ssh += ["-i", str(key)]
            else:
                ssh += ["-o", "IdentityFile=/dev/null"]
            env["GIT_SSH_COMMAND"] = " ".join(shlex.quote(a) for a in ssh)
        if config:
            env["GIT_CONFIG_COUNT"] = str(len(config))
            for i, (key, value) in enumerate(config):
                env[f"GIT_CONFIG_KEY_{i}"] = key
                env[f"GIT_CONFIG_VALUE_{i}"] = value
        yield GitAccess(env, ssh, hosts)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def describe(remote_url: str) -> str:
    """A remote for messages: the URL, which never holds credentials."""
    return redact(remote_url)
