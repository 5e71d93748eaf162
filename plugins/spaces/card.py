"""A space's configuration, from its README.md card as the Hub defines it.

The YAML front matter names the SDK (``sdk: gradio | streamlit | static | docker``),
``app_file``, ``app_port`` (docker), ``sdk_version`` and ``python_version``. A card that
is missing or malformed is a configuration error the runtime reports as its stage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

SDKS = ("gradio", "streamlit", "static", "docker")
DEFAULT_APP_FILE = {"gradio": "app.py", "streamlit": "app.py", "static": "index.html", "docker": ""}
_FRONT = re.compile(rb"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
MAX_CARD = 64 * 1024


class CardError(ValueError):
    """The card does not describe a space this runtime can run (the message says why)."""


@dataclass(frozen=True)
class SpaceCard:
    sdk: str
    app_file: str
    app_port: int = 7860
    sdk_version: str | None = None
    python_version: str | None = None

    def to_dict(self) -> dict:
        return {"sdk": self.sdk, "app_file": self.app_file, "app_port": self.app_port,
                "sdk_version": self.sdk_version, "python_version": self.python_version}


PYTHON_VERSION = re.compile(r"3\.\d{1,2}(\.\d{1,3})?")


def parse_card(readme: bytes | None) -> SpaceCard:
    if readme is None:
        raise CardError("the space has no README.md: its card names the SDK (sdk: gradio, streamlit, static)")
    match = _FRONT.match(readme[:MAX_CARD])
    if match is None:
        raise CardError("README.md has no YAML front matter naming the SDK (---\\nsdk: gradio\\n---)")
    try:
        meta = yaml.safe_load(match.group(1).decode("utf-8", "replace"))
    except yaml.YAMLError as exc:
        raise CardError(f"README.md's front matter is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(meta, dict):
        raise CardError("README.md's front matter is not a mapping")
    sdk = meta.get("sdk")
    if sdk not in SDKS:
        raise CardError(f"sdk must be one of {', '.join(SDKS)}, not {sdk!r}")
    app_file = meta.get("app_file") or DEFAULT_APP_FILE[sdk]
    if not isinstance(app_file, str) or app_file.startswith("/") or ".." in app_file.split("/"):
        raise CardError(f"app_file must be a path inside the repository, not {app_file!r}")
    port = meta.get("app_port", 7860)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise CardError(f"app_port must be a port number, not {port!r}")
    version = meta.get("sdk_version")
    python = meta.get("python_version")
    if python is not None and not PYTHON_VERSION.fullmatch(str(python)):
        raise CardError(f"python_version must be a Python 3 version such as 3.11, not {python!r}")
    return SpaceCard(sdk, app_file, port, None if version is None else str(version),
                     None if python is None else str(python))
