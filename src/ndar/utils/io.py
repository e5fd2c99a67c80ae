"""Atomic file writes and small file helpers.

Nothing half-written is ever left behind: every writer goes to a temporary file in the same folder,
then `os.replace` renames it over the target, which is atomic on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".part"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    The temporary name is `.<name>.<random>.part`: it never ends in the target's extension, so a
    file a killed process left behind is never matched by a reader's `*.npz` or `*.json` glob
    (pathlib's glob matches dot files). Writers that pick a format from the extension must be
    told the format instead (np.savez / np.save on an open file, `av.open(..., format=...)`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600 files: give the result the usual permissions
            os.chmod(tmp_path, 0o666 & ~_current_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(roots: list[Path], pattern: str = "*") -> str:
    """One sha256 over the files matching `pattern` under each root (their relative names and
    contents; temporaries and missing roots left out).

    Why: a stage that skips when its settings are unchanged must also notice when the files it
    read were remade (re-extracted features, re-trained heads); the digest recorded beside its
    outputs tells."""
    digest = hashlib.sha256()
    for root in map(Path, roots):
        digest.update(f"[{root.parent.name}/{root.name}]".encode())
        files = sorted(root.rglob(pattern)) if root.is_dir() else []
        for path in files:
            if path.is_file() and not path.name.startswith("."):
                digest.update(path.relative_to(root).as_posix().encode())
                digest.update(sha256_file(path).encode())
    return digest.hexdigest()
