"""Replacing published files so that a reader never sees half of one, or a mix of two sets.

Two shapes, one rule (write everything aside, flush it to disk, then make it
visible with one atomic rename):

- `write_file_atomically`: one file. Written to a temporary sibling, fsynced, then
  `os.replace`d over the target (atomic within one filesystem).
- `publish_folder`: a set of files read together (the dashboard page and its data,
  the at-risk CSV / Parquet files and their manifest). The set is written into a
  new versioned folder beside the target, and the target is a symbolic link that
  is replaced atomically to point at it. Renaming a folder over a non-empty
  folder is impossible on POSIX, so the old way (move the old folder aside, then
  rename the new one in) left an instant with no folder at all; replacing a link
  leaves the old complete set or the new one visible at every moment.

A reader who lists the folder and then opens its files should resolve the link
once (`os.path.realpath`) and read from there: the version it resolved stays on
disk while it is the current or the previous one, and for at least
REPLACED_VERSION_GRACE after it was replaced, so a slow reader does not lose
files mid-read. Older versions are deleted by the next publication.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar

from orchestration.lib.failpoints import failpoint

# A published file is for whoever reads the folder; mkstemp would make it 0600.
PUBLISHED_FILE_MODE = 0o644

T = TypeVar("T")

# How long a replaced version stays for readers that resolved the link before the swap.
REPLACED_VERSION_GRACE = dt.timedelta(minutes=10)
STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"


def write_file_atomically(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write` on a temporary sibling of `path`, fsync it, then rename it over `path`.
    When `write` fails, `path` is untouched and the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, PUBLISHED_FILE_MODE)
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def write_bytes_atomically(path: Path, content: bytes) -> None:
    write_file_atomically(path, lambda stream: stream.write(content))


def write_text_atomically(path: Path, text: str) -> None:
    write_bytes_atomically(path, text.encode("utf-8"))


def version_prefix(target: Path) -> str:
    """Versions of `<parent>/<name>` are hidden siblings `.<name>.v-<UTC time>-<random>`."""
    return f".{target.name}.v-"


def current_version(target: Path) -> Path | None:
    """The folder the published link points at; None when nothing is published as a link."""
    if not target.is_symlink():
        return None
    return target.parent / os.readlink(target)


def publish_folder(target: Path, fill: Callable[[Path], T], grace: dt.timedelta = REPLACED_VERSION_GRACE) -> T:
    """Write a new set of files with `fill(folder)` into a fresh version folder, then point
    the link `target` at it in one atomic step; return what `fill` returned.

    When `fill` fails nothing published is touched and the half-written version is
    deleted. After the swap, older versions (replaced earlier, or left half-written by
    a killed run) are deleted once they have been replaced for `grace`; the version
    just replaced is always kept.

    A real folder at `target` (published before links were used) is moved into a
    version first: that one migration leaves an instant with no folder.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime(STAMP_FORMAT)
    version = target.with_name(f"{version_prefix(target)}{stamp}-{uuid.uuid4().hex[:8]}")
    version.mkdir()
    try:
        outcome = fill(version)
        _fsync_folder(version)
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)
        raise
    failpoint("publish.before_swap")  # a test hook (orchestration/lib/failpoints.py)
    replaced = current_version(target)
    if target.is_dir() and not target.is_symlink():
        replaced = target.with_name(f"{version_prefix(target)}{stamp}-legacy")
        os.replace(target, replaced)
    link = target.with_name(f".{target.name}.link-{uuid.uuid4().hex[:8]}")
    os.symlink(version.name, link)  # relative: the output folder can be moved or mounted elsewhere
    os.replace(link, target)
    _fsync_folder(target.parent)
    _delete_old_versions(target, keep={version.name, replaced.name if replaced else ""}, grace=grace)
    return outcome


def _stamp(name: str, prefix: str) -> dt.datetime:
    return dt.datetime.strptime(name.removeprefix(prefix).split("-")[0], STAMP_FORMAT).replace(tzinfo=dt.UTC)


def _delete_old_versions(target: Path, keep: set[str], grace: dt.timedelta) -> None:
    """Delete the versions replaced more than `grace` ago: a version was replaced when the
    next one (by name, i.e. by creation time) was created."""
    prefix = version_prefix(target)
    versions = sorted(path.name for path in target.parent.iterdir() if path.name.startswith(prefix))
    now = dt.datetime.now(dt.UTC)
    for name, successor in zip(versions, versions[1:], strict=False):
        if name not in keep and now - _stamp(successor, prefix) >= grace:
            shutil.rmtree(target.parent / name, ignore_errors=True)
    for link in target.parent.glob(f".{target.name}.link-*"):  # a run killed between symlink and replace
        link.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    """Persist the folder's entries (new files, the renamed link) across a power loss."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
