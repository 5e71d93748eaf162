"""gitd's fine-tune plugin: train a hub model on a hub dataset and push the result back.

A job names a model repository (pinned to a commit), a dataset repository and a training
config (full or LoRA); it downloads both from gitd, trains, and pushes a new model
repository whose card sets ``base_model``, ``base_model_relation`` and ``datasets``. Two
runtimes: ``local`` (a supervised subprocess on this host, the default) and
``kubernetes`` (a ``FinetuneJob`` custom resource the kopf operator in
``gitd_plugins.finetune.operator`` turns into a Job). See docs/finetune.md.
"""

from .plugin import FinetunePlugin

__all__ = ["FinetunePlugin"]
