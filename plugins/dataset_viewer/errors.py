"""The viewer API's errors: ``ApiError`` answered as ``{"error": message}`` with an
``X-Error-Code`` header, as the Hugging Face dataset viewer answers them."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from gitd.plugin_api import PluginRequest, Response

from .engine import QueryTimeout


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str = "Error", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


def answer(handler: Callable[[Any, PluginRequest], Any]) -> Callable[[Any, PluginRequest], Any]:
    @wraps(handler)
    def run(self: Any, request: PluginRequest) -> Any:
        try:
            return handler(self, request)
        except ApiError as exc:
            return Response({"error": exc.message}, exc.status, headers={"X-Error-Code": exc.code, **exc.headers})
        except QueryTimeout as exc:
            return Response({"error": str(exc)}, 504, headers={"X-Error-Code": "QueryTimeout"})

    return run
