"""gitd's spaces plugin: Gradio, Streamlit and static apps from space repositories.

A push to a space's default branch builds and (re)starts it; the daemon proxies
``/spaces/NS/NAME/app/...`` to it. Two runtimes: ``local`` (supervised processes on this
host, the default) and ``kubernetes`` (a ``Space`` custom resource that the kopf operator
in ``gitd_plugins.spaces.operator`` reconciles). See docs/spaces.md.
"""

from .plugin import SpacesPlugin

__all__ = ["SpacesPlugin"]
