"""The repository stands alone: a user's clone has nothing beside it."""

from __future__ import annotations

import subprocess

from conftest import REPO

# Built from parts so that this file does not match itself.
OUTSIDE = ".." + "/shared"


def test_no_tracked_file_refers_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    offenders = []
    for name in filter(None, tracked):
        path = REPO / name.decode()
        if path.is_file() and OUTSIDE.encode() in path.read_bytes():
            offenders.append(name.decode())
    assert offenders == []
