"""Writing files safely: one atomic writer for every output and cache of the project.

:func:`atomic_write` writes to a temporary file beside the target and renames it
onto the target only when writing succeeded, so a failure (or kill -9) never
leaves a half-written file under the real name and an older file stays intact.
Exports (:mod:`geo.export`), posters, the network cache and the results cache
all write through it.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any


def atomic_write(path: Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp)`` and move ``tmp`` onto ``path`` only if it succeeded.

    ``tmp`` has the same file name as ``path`` (so writers that infer the format
    from the suffix work) inside a fresh hidden directory beside ``path`` (so
    the final :func:`os.replace` is an atomic rename on the same file system).
    The file is flushed to disk before the rename. On any error, including
    KeyboardInterrupt, the temporary directory is removed, ``path`` is left as it
    was and the error propagates.

    Parameters
    ----------
    path
        The output file; missing parent directories are created.
    writer
        Writes one complete file at the path it is given.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        tmp = tmp_dir / path.name
        writer(tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


#: A temporary directory of ``atomic_write`` older than this was left by a killed process.
STALE_TEMPORARY_S = 3600.0


def _remove_stale_temporaries(path: Path) -> None:
    """Remove hidden temporaries of ``path`` left by a process killed mid-write (kill -9)."""
    now = time.time()
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if now - leftover.stat().st_mtime > STALE_TEMPORARY_S:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


def features_text(features: Iterable[Mapping[str, Any]]) -> str:
    """A GeoJSON FeatureCollection with one feature a line, keys in their given order:
    the text of a region pack's files, so that two builds differ line by line."""
    lines = [json.dumps(feature, ensure_ascii=False) for feature in features]
    return '{"type": "FeatureCollection", "features": [\n' + ",\n".join(lines) + "\n]}\n"
