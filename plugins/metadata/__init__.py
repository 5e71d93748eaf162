"""Built-in metadata plugin: what a repository's files say, as tags and fields the Hub
answers and listings filter by (issue #12).

On every change of a repository's default branch (push, API commit, mirror, plugin
commit) a post-receive job reads the files that changed, and only those: the README's
card, config.json, safetensors headers and GGUF metadata (ranged reads of the LFS
objects, on local disk or S3 alike), Parquet footers. It stores per-file facts and
per-kind file counts in its own tables, derives tags in the Hub's namespaced form,
``safetensors``/``gguf``/``config``/``transformersInfo`` fields, license and card flags,
and base_model lineage, and indexes the tags for ``list_models(filter=...)``.

Registered through the ``gitd.plugins`` entry point like any third-party plugin, using
only ``gitd.plugin_api``; configured by ``[plugins.metadata]`` (see settings.py and
docs/plugins.md).
"""

from .plugin import MetadataPlugin

__all__ = ["MetadataPlugin"]
