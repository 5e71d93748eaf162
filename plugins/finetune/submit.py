"""A job request checked and pinned before anything runs: the model and dataset repositories
(readable by the caller, of the right types, the model a transformers model), their revisions
resolved to commits, the target repository's name, and the training config. Every refusal is
an ``HTTPError`` that says what is wrong."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gitd.plugin_api import HTTPError, LimitExceeded, PluginContext, RepoInfo

from .config import TrainConfig, parse_config

FIELDS = ("model", "revision", "dataset", "dataset_revision", "target", "private", "config")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")

# (full name, type) -> the repository, or HTTPError (404 for one the caller may not read)
Lookup = Callable[[str, str], RepoInfo]


@dataclass(frozen=True)
class Pinned:
    model: RepoInfo
    model_revision: str
    dataset: RepoInfo
    dataset_revision: str
    target: str
    private: bool
    config: TrainConfig


def _name(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not NAME.match(value):
        raise HTTPError(400, f"{key}: a repository name NAMESPACE/NAME")
    return value


def _find(lookup: Lookup, name: str, repo_type: str, other: str) -> RepoInfo:
    try:
        return lookup(name, repo_type)
    except HTTPError as exc:
        if exc.status != 404:
            raise
        try:
            lookup(name, other)
        except HTTPError:
            raise HTTPError(404, f"{repo_type} repository {name} not found") from None
        raise HTTPError(400, f"{name} is a {other} repository, not a {repo_type}") from None


def _revision(context: PluginContext, repo: RepoInfo, revision: Any, key: str) -> str:
    if revision is not None and (not isinstance(revision, str) or not revision or len(revision) > 255):
        raise HTTPError(400, f"{key}: a branch, tag or commit")
    commit = context.view(repo).resolve(revision or repo.default_branch)
    if commit is None:
        if revision:
            raise HTTPError(400, f"{key}: {revision!r} is not a branch, tag or commit of {repo.full_name}")
        raise HTTPError(400, f"{repo.full_name} has no commits")
    return commit


def check_model(context: PluginContext, repo: RepoInfo, commit: str) -> None:
    """A fine-tune starts from a transformers model: config.json and weights at the commit."""
    view = context.view(repo)
    if view.entry(commit, "config.json") is None:
        raise HTTPError(400, f"{repo.full_name} at {commit[:12]} is not a transformers model: it has no config.json "
                             "(a fine-tune needs a causal language model's config, weights and tokenizer)")
    try:
        names = [e.path for e in view.tree(commit, "", limit=10_000)]
    except LimitExceeded:  # a huge top folder: let the job find out
        return
    if not any(n.endswith(WEIGHT_SUFFIXES) for n in names):
        raise HTTPError(400, f"{repo.full_name} at {commit[:12]} has no weights (*.safetensors or *.bin)")


def pin(context: PluginContext, lookup: Lookup, body: Any, owner: str, *, any_namespace: bool = False) -> Pinned:
    if not isinstance(body, dict):
        raise HTTPError(400, "the request body is a JSON object: model, dataset, target, config, ...")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise HTTPError(400, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    config = parse_config(body.get("config"))
    model = _find(lookup, _name(body, "model"), "model", "dataset")
    dataset = _find(lookup, _name(body, "dataset"), "dataset", "model")
    model_commit = _revision(context, model, body.get("revision"), "revision")
    check_model(context, model, model_commit)
    dataset_commit = _revision(context, dataset, body.get("dataset_revision"), "dataset_revision")
    private = body.get("private")
    if private is not None and not isinstance(private, bool):
        raise HTTPError(400, "private: true or false")
    target = _name(body, "target") if "target" in body else default_target(context, owner, model.name, config.method)
    if not any_namespace and target.split("/")[0] != owner:
        raise HTTPError(403, f"a job pushes to a new repository in your own namespace ({owner}/...), "
                             f"not {target}")
    if context.find_repo(target) is not None:
        raise HTTPError(409, f"{target} exists already: a job pushes to a new repository")
    return Pinned(model, model_commit, dataset, dataset_commit, target,
                  bool(model.private or dataset.private) if private is None else private, config)


def default_target(context: PluginContext, owner: str, model_name: str, method: str) -> str:
    base = f"{owner}/{model_name[:80]}-{method}"
    for n in range(1, 1000):
        name = f"{base}-{n}"
        if context.find_repo(name) is None:
            return name
    raise HTTPError(409, f"name the target: {base}-1 ... -999 exist")
