"""The Hugging Face-compatible Hub API (at the server root) and the native REST API (/api/v1).

The handlers are built and registered by the composition root (``gitd.compose``), before
the git and LFS routes.
"""
