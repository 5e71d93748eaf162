"""gitd: a self-hosted hub for LLM assets, built around a Git server.

The package root re-exports the public plugin API (``gitd.plugin_api``).
"""

from gitd.plugin_api import *  # noqa: F403
from gitd.plugin_api import __all__ as _api

__version__ = "0.1.0"

__all__ = [*_api, "__version__"]
