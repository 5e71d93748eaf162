"""Plugins: the pluggy manager, the hook specifications, and the events plugins receive.

Plugin authors import the public API from ``gitd.plugin_api`` (re-exported by ``gitd``);
this package is the daemon's side of it.
"""
