"""Which of git's object checks (fsck) a push must pass: ``fsck_settings(config)``.

With ``[git] fsck_objects`` on (the default) git checks every object a push brings
(``receive.fsckObjects``), with warnings raised to errors. Long-lived repositories carry
objects that old git versions and import tools wrote and that today's fsck flags:
redis, for one, has a tree whose directory modes are written ``040000``. Such objects
are harmless, and a server that refused them could not host those histories, so the ids
in ``[git] fsck_ignore`` are ignored while every other check still refuses the push.

Only the ids in ``IGNORABLE`` may be listed. Per id:

* ``zeroPaddedFilemode``: a tree entry's mode with a leading zero (``040000``), as the
  earliest git versions and some import tools wrote it; git reads it as the same mode,
  and a tree's id is fixed by its bytes, so refusing it only makes the history unpushable.
* ``badTimezone``, ``missingSpaceBeforeDate``, ``zeroPaddedDate``, ``badDate``,
  ``badDateOverflow``: the "when" of an author, committer or tagger line as some old
  tools wrote it (``+051800``, no space before the date, ...). Only ``git log`` and
  friends show it; nothing is checked out or run from it.
* ``badEmail``, ``missingEmail``, ``missingNameBeforeEmail``, ``missingSpaceBeforeEmail``,
  ``badName``, ``multipleAuthors``, ``extraHeaderEntry``, ``nulInCommit``,
  ``missingTaggerEntry``, ``badTagName``: the "who" and the free text of commits and
  tags, likewise only shown.

Everything about trees, paths and links stays an error whatever the setting: ``.git``
and ``..`` path components (``hasDotgit``, ``hasDotdot``, ...), full or empty path
names, symbolic links where git forbids them or pointing into ``.git``, every
``.gitmodules`` check (``gitmodulesUrl`` refuses ``url = --upload-pack=...``),
``.gitattributes`` limits, duplicate or unsorted tree entries, unknown modes, null and
missing object ids, broken headers. Those protect everyone who clones from the server.

The default list (config/gitd.toml) is the historical handful seen in real repositories.
The same settings serve pushes (``receive.*``), fetches into the server's repositories
(``fetch.*``, for mirrors), ``git fsck`` runs (``fsck.*``), and commands that take the
checks as an option (``strict_option()``: ``git index-pack --strict=...``), so API
commits can apply exactly the checks pushes do.
"""

from __future__ import annotations

from dataclasses import dataclass

from gitd.config import Config, ConfigError

IGNORABLE = (
    "zeroPaddedFilemode",
    "badTimezone", "missingSpaceBeforeDate", "zeroPaddedDate", "badDate", "badDateOverflow",
    "badEmail", "missingEmail", "missingNameBeforeEmail", "missingSpaceBeforeEmail", "badName",
    "multipleAuthors", "extraHeaderEntry", "nulInCommit", "missingTaggerEntry", "badTagName",
)
_BY_LOWER = {msg_id.lower(): msg_id for msg_id in IGNORABLE}


@dataclass(frozen=True)
class FsckSettings:
    """Whether pushed objects are checked, and which check ids are ignored."""

    enabled: bool = True
    ignore: tuple[str, ...] = ()

    def git_config(self, kinds: tuple[str, ...] = ("receive", "fetch", "fsck")) -> list[str]:
        """``key=value`` settings for ``git -c``: for pushes (``receive``), fetches into the
        server's repositories (``fetch``) and ``git fsck`` runs (``fsck``)."""
        on = "true" if self.enabled else "false"
        settings = [f"{kind}.fsckObjects={on}" for kind in kinds if kind != "fsck"]
        for msg_id in self.ignore:
            settings += [f"{kind}.fsck.{msg_id}=ignore" if kind != "fsck" else f"fsck.{msg_id}=ignore"
                         for kind in kinds]
        return settings

    def strict_option(self) -> str:
        """The option that makes ``git index-pack`` / ``git unpack-objects`` check objects as
        pushes are checked (as receive-pack passes it on)."""
        if not self.ignore:
            return "--strict"
        return "--strict=" + ",".join(f"{msg_id.lower()}=ignore" for msg_id in self.ignore)


def parse_ignore(values: list[object], setting: str = "git.fsck_ignore") -> tuple[str, ...]:
    """The fsck ids of ``values``, spelled as git documents them; ConfigError for anything else."""
    found: list[str] = []
    for value in values:
        msg_id = _BY_LOWER.get(value.lower()) if isinstance(value, str) else None
        if msg_id is None:
            raise ConfigError(
                f"{setting}: {value!r} cannot be ignored; only checks of how commits and tags record who and "
                f"when (and zero-padded tree modes) can: {', '.join(IGNORABLE)}. Checks of paths, links and "
                f".gitmodules protect everyone who clones")
        if msg_id not in found:
            found.append(msg_id)
    return tuple(found)


def fsck_settings(config: Config) -> FsckSettings:
    """The object checks configured in ``[git]`` (fsck_objects, fsck_ignore)."""
    return FsckSettings(enabled=config.get_bool("git.fsck_objects"),
                        ignore=parse_ignore(config.get_list("git.fsck_ignore")))
