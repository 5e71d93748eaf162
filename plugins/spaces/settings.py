"""The spaces plugin's settings (``[plugins.spaces]`` in gitd.toml)."""

from __future__ import annotations

from dataclasses import dataclass

from gitd.plugin_api import Duration, Size

HOUR, START, BUILD, NO_CPU_LIMIT, ONE_SECOND = Duration(3600), Duration(120), Duration(1800), Duration(0), Duration(1)
EIGHT_GIB, ONE_MIB = Size(8 << 30), Size(1 << 20)


@dataclass(frozen=True)
class Settings:
    runtime: str = "local"                      # "local" (this host) or "kubernetes" (the operator)
    python: str = "venv"                        # "venv": per-space virtualenv; "daemon": the daemon's interpreter
    interpreter: str = ""                       # python = "daemon": this interpreter (empty: the daemon's)
    pip_args: list[str] | None = None           # extra arguments for pip install (an index, --no-index ...)
    sleep_time: Duration = HOUR                 # idle seconds before a space sleeps (0: never)
    start_timeout: Duration = START             # seconds an app may take to open its port
    build_timeout: Duration = BUILD             # seconds a virtualenv build may take
    memory: Size = EIGHT_GIB                    # address space per app (RLIMIT_AS)
    cpu_time: Duration = NO_CPU_LIMIT            # CPU seconds per app process (RLIMIT_CPU; 0: unlimited)
    open_files: int = 1024                      # RLIMIT_NOFILE
    processes: int = 0                          # RLIMIT_NPROC (counts the user's processes; use with run_as)
    run_as: str = ""                            # user the apps run as (empty: the daemon's)
    work_dir: str = ""                          # builds, virtualenvs, logs (empty: DATA/plugins/spaces/local)
    max_log: Size = ONE_MIB                     # bytes of log kept per space and kind (x2: one rotation)
    max_restarts: int = 5                       # crashes in a row before a space stays in RUNTIME_ERROR
    backoff: Duration = ONE_SECOND              # first restart delay, doubled per crash (at most 60 s)
    log_follow: Duration = HOUR                 # longest a logs stream follows a live space
    log_streams: int = 32                       # logs streams open at once (more: 429)
    host_domain: str = ""                       # local runtime: NAME--NS.DOMAIN serves the space too (empty: no)
    host_scheme: str = "https"                  # how clients reach those hosts (space_info().host)
    # kubernetes runtime
    namespace: str = "gitd-spaces"
    image: str = "python:3.11-slim"
    public_url: str = ""                        # how pods reach gitd (init containers fetch the commit)
    token_secret: str = "gitd-space-reader"     # Secret (key "token") with a gitd token that reads the spaces
    registry: str = ""                          # where docker spaces' images are built to (kaniko)
    ingress_domain: str = ""                    # NAME--NS.DOMAIN per space when set
    kubeconfig: str = ""                        # the cluster's kubeconfig file (empty: in-cluster, else
                                                # KUBECONFIG or ~/.kube/config)
    log_tail: int = 1000                        # kubernetes runtime: lines of a run log replayed

    def validate(self) -> None:
        from gitd.plugin_api import SettingsError

        if self.runtime not in ("local", "kubernetes"):
            raise SettingsError(f"plugins.spaces.runtime: local or kubernetes, not {self.runtime!r}")
        if self.python not in ("venv", "daemon"):
            raise SettingsError(f"plugins.spaces.python: venv or daemon, not {self.python!r}")
        if self.host_domain:
            from gitd.plugin_api import HostRoute

            try:
                HostRoute(self.host_domain, lambda label: None)
            except ValueError:
                raise SettingsError(f"plugins.spaces.host_domain: a DNS name, not {self.host_domain!r}") from None
        if self.host_scheme not in ("http", "https"):
            raise SettingsError(f"plugins.spaces.host_scheme: http or https, not {self.host_scheme!r}")
        if self.runtime == "kubernetes" and not self.public_url:
            raise SettingsError("plugins.spaces.public_url: the kubernetes runtime needs the URL pods reach gitd at")
