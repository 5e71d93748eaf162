"""A new repository's first commit, as on the Hugging Face Hub.

On the Hub a repository is never empty: ``create_repo`` commits a ``.gitattributes`` that
sends the usual binary formats through Git LFS (and, for a space, a README.md whose card
names its SDK), so branches, tags, pull requests and ``/revision/main`` work at once.
``RepoSeeder`` makes that commit through the hook chain, like any API commit. Git users
who want to push an existing history into an empty repository create it with
``gitd repo create --empty`` (or push with ``--force``: the first commit is not theirs).
"""

from __future__ import annotations

from gitd.hub.commits import AddFile, CommitWriter, Op
from gitd.repos import RepoService
from gitd.store import Account, Repo

LFS_ATTRIBUTES = "filter=lfs diff=lfs merge=lfs -text"

# The patterns the Hub's default .gitattributes sends through LFS (a fact list: formats of
# archives, serialised tensors and model files).
MODEL_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
    "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb",
    "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*",
    "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
)
# Datasets add compressed shards, audio, images and video.
DATASET_EXTRA = {
    "Compressed shards": ("*.lz4", "*.mds"),
    "Audio files - uncompressed": ("*.pcm", "*.sam", "*.raw"),
    "Audio files - compressed": ("*.aac", "*.flac", "*.mp3", "*.ogg", "*.wav"),
    "Image files - uncompressed": ("*.bmp", "*.gif", "*.png", "*.tiff"),
    "Image files - compressed": ("*.jpg", "*.jpeg", "*.webp"),
    "Video files - compressed": ("*.mp4", "*.webm"),
}
INITIAL_MESSAGE = "initial commit\n"


def gitattributes(repo_type: str) -> str:
    """The default ``.gitattributes`` of a new repository of ``repo_type``."""
    lines = [f"{p} {LFS_ATTRIBUTES}" for p in MODEL_PATTERNS]
    if repo_type == "dataset":
        for title, patterns in DATASET_EXTRA.items():
            lines.append(f"# {title}")
            lines += [f"{p} {LFS_ATTRIBUTES}" for p in patterns]
    return "\n".join(lines) + "\n"


def space_readme(name: str, sdk: str | None) -> str:
    card = [f"title: {name}"] + ([f"sdk: {sdk}"] if sdk else []) + ["pinned: false"]
    return "---\n" + "\n".join(card) + "\n---\n\n" + f"# {name}\n"


def initial_files(repo_type: str, name: str, sdk: str | None = None) -> dict[str, bytes]:
    """Path -> content of a new repository's first commit."""
    files = {".gitattributes": gitattributes(repo_type).encode()}
    if repo_type == "space":
        files["README.md"] = space_readme(name, sdk).encode()
    return files


class RepoSeeder:
    """Creates repositories with their first commit (or empty, for git users who push a history)."""

    def __init__(self, repos: RepoService, writer: CommitWriter):
        self.repos = repos
        self.writer = writer

    async def seed(self, repo: Repo, *, author: str, sdk: str | None = None) -> str:
        """Commit the first files to the default branch; returns the commit sha."""
        info = self.repos.info(repo)
        async with self.writer.quarantine(info.path) as q:
            ops: list[Op] = [AddFile(path, await self.writer.write_blob(q, data))
                             for path, data in initial_files(repo.type, repo.name, sdk).items()]
            return await self.writer.commit_to_branch(q, info, repo.default_branch, ops, author=author,
                                                      message=INITIAL_MESSAGE)

    async def create(self, owner: Account, name: str, repo_type: str, *, private: bool, author: str,
                     sdk: str | None = None, empty: bool = False) -> Repo:
        """A new repository with its first commit (none with ``empty``). If the first commit is
        refused (a push policy), the repository is removed again and the refusal raised."""
        repo = self.repos.create(owner, name, repo_type, private=private)
        if empty:
            return repo
        try:
            await self.seed(repo, author=author, sdk=sdk)
        except BaseException:
            self.repos.delete(repo)
            raise
        return repo
