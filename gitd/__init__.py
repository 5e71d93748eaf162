"""gitd: a self-hosted hub for LLM assets, built around a Git server."""

from gitd.errors import PushRejected
from gitd.plugins.events import PushEvent, RefUpdate, RepoInfo
from gitd.plugins.hookspecs import hookimpl, hookspec

__version__ = "0.1.0"

__all__ = ["PushEvent", "PushRejected", "RefUpdate", "RepoInfo", "__version__", "hookimpl", "hookspec"]
