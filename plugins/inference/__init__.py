"""The built-in inference plugin: OpenAI-compatible endpoints for the hub's models
(docs/inference.md)."""

from .plugin import InferencePlugin

__all__ = ["InferencePlugin"]
