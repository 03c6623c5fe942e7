"""Published files are replaced whole: one file by rename, a set of files by swapping a link."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from pathlib import Path

import pytest

from orchestration.lib.atomic_files import (
    current_version,
    publish_folder,
    write_bytes_atomically,
    write_file_atomically,
    write_text_atomically,
)


def _write_set(number: int, files: int = 5):
    """A set whose every file names the set it belongs to; the manifest lists them, last."""

    def fill(folder: Path) -> int:
        names = [f"part_{index}.txt" for index in range(files)]
        for name in names:
            write_text_atomically(folder / name, f"set {number}\n" * 200)
        write_text_atomically(folder / "manifest.json", json.dumps({"set": number, "files": names}))
        return number

    return fill


def test_a_file_is_replaced_whole_and_readable_by_everyone(tmp_path):
    target = tmp_path / "reports" / "page.html"
    write_text_atomically(target, "old")
    write_bytes_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    assert os.listdir(target.parent) == ["page.html"], "no temporary file is left"


def test_a_failing_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "page.html"
    target.write_text("old")

    def half_then_fail(stream) -> None:
        stream.write(b"half a pa")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_file_atomically(target, half_then_fail)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["page.html"]


def test_a_published_folder_is_a_link_to_a_complete_version(tmp_path):
    target = tmp_path / "exports" / "at_risk"
    assert publish_folder(target, _write_set(1)) == 1
    assert target.is_symlink() and not os.path.isabs(os.readlink(target)), "a relative link: the folder can move"
    assert json.loads((target / "manifest.json").read_text()) == {
        "set": 1,
        "files": [f"part_{index}.txt" for index in range(5)],
    }
    assert current_version(target) == target.parent / os.readlink(target)


def test_a_failing_set_leaves_the_published_one_and_deletes_its_half(tmp_path):
    target = tmp_path / "at_risk"
    publish_folder(target, _write_set(1))
    before = sorted(os.listdir(tmp_path))

    def half_then_fail(folder: Path) -> None:
        (folder / "part_0.txt").write_text("set 2")
        raise RuntimeError("the mart could not be read")

    with pytest.raises(RuntimeError, match="could not be read"):
        publish_folder(target, half_then_fail)
    assert sorted(os.listdir(tmp_path)) == before
    assert json.loads((target / "manifest.json").read_text())["set"] == 1


def test_the_previous_version_is_kept_and_older_ones_and_leftovers_are_deleted(tmp_path):
    target = tmp_path / "at_risk"
    # what a killed run leaves: a half-written version and a link never swapped in
    (tmp_path / ".at_risk.v-20000101T000000000000Z-deadbeef").mkdir()
    os.symlink("nowhere", tmp_path / ".at_risk.link-deadbeef")
    publish_folder(target, _write_set(1))
    first = current_version(target)
    publish_folder(target, _write_set(2))
    second = current_version(target)
    # replaced 10 minutes ago at the earliest: nothing is deleted yet
    assert len(os.listdir(tmp_path)) == 4
    publish_folder(target, _write_set(3), grace=dt.timedelta(0))
    third = current_version(target)
    assert sorted(os.listdir(tmp_path)) == sorted(["at_risk", second.name, third.name])
    assert not first.exists()
    assert json.loads((second / "manifest.json").read_text())["set"] == 2, "a reader still on set 2 can finish"


def test_a_plain_folder_published_before_links_becomes_the_previous_version(tmp_path):
    target = tmp_path / "dashboard"
    target.mkdir()
    (target / "index.html").write_text("old page")
    publish_folder(target, _write_set(1))
    assert target.is_symlink()
    previous = [name for name in os.listdir(tmp_path) if name.endswith("-legacy")]
    assert len(previous) == 1
    assert (tmp_path / previous[0] / "index.html").read_text() == "old page"


def test_at_every_moment_a_reader_sees_one_complete_set(tmp_path):
    """A reader resolves the link once, then reads the manifest and every file it lists, while
    a writer publishes 150 sets. Each file must be there and belong to the manifest's set; the
    old swap (move the old folder aside, rename the new one in) failed this with a missing
    folder. (The versions replaced during the test stay for REPLACED_VERSION_GRACE.)"""
    target = tmp_path / "at_risk"
    publish_folder(target, _write_set(0))
    done = threading.Event()
    problems: list[str] = []
    reads = [0]

    def reader() -> None:
        while not done.is_set():
            try:
                folder = Path(os.path.realpath(target))
                manifest = json.loads((folder / "manifest.json").read_text())
                for name in manifest["files"]:
                    if (folder / name).read_text() != f"set {manifest['set']}\n" * 200:
                        problems.append(f"{name} is not from set {manifest['set']}")
                reads[0] += 1
            except (OSError, ValueError) as error:
                problems.append(repr(error))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for number in range(1, 151):
            publish_folder(target, _write_set(number))
    finally:
        done.set()
        thread.join()
    assert problems == []
    assert reads[0] > 0
    assert json.loads((target / "manifest.json").read_text())["set"] == 150
