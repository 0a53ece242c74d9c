"""Study: results cache integrity (checksum, version, pruning) and incremental updates."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from geo.results import ResultsCache
from geo.settings import Settings
from geo.study import KEEP_RESULTS, Study


def test_corrupt_results_cache_is_detected_and_rebuilt(tmp_path, caplog):
    settings = Settings(cache_dir=tmp_path)
    first = Study.load(settings, iso_minutes=(30,), modes=("ebike",))
    (cached,) = (tmp_path / "results").glob("*.pkl")
    blob = bytearray(cached.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte in the middle of the pickle
    cached.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING, logger="geo.results"):
        again = Study.load(settings, iso_minutes=(30,), modes=("ebike",))
    assert "checksum mismatch" in caplog.text
    np.testing.assert_array_equal(
        first.coverage["ebike"]["any_minutes"].to_numpy(),
        again.coverage["ebike"]["any_minutes"].to_numpy(),
    )
    # rebuilt and rewritten: a third load reads it without complaint
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="geo.results"):
        Study.load(settings, iso_minutes=(30,), modes=("ebike",))
    assert "checksum" not in caplog.text
    # a truncated file is refused the same way
    cached.write_bytes(cached.read_bytes()[:1000])
    cache = ResultsCache(tmp_path / "results")
    assert cache.read(cached.stem) is None
    # a file of another format version is recomputed, not misread
    cache.write(cached.stem, first.results)
    blob = bytearray(cached.read_bytes())
    blob[len(b"skillcircle-results\x00") + 3] ^= 0x01
    cached.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING, logger="geo.results"):
        assert cache.read(cached.stem) is None
    assert "format version 9, not 8" in caplog.text


def test_results_cache_keeps_the_newest_files(tmp_path, study):
    cache = ResultsCache(tmp_path, keep=KEEP_RESULTS)
    for i in range(KEEP_RESULTS + 3):
        path = cache.write(f"{i:02d}", study.results)
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    kept = sorted(p.stem for p in tmp_path.glob("*.pkl"))
    assert kept == [f"{i:02d}" for i in range(3, KEEP_RESULTS + 3)]
    back = cache.read(f"{KEEP_RESULTS + 2:02d}")
    assert back is not None and back.modes == study.modes
    np.testing.assert_array_equal(
        back.coverage["walk"]["any_minutes"], study.coverage["walk"]["any_minutes"]
    )
    assert not [p for p in tmp_path.iterdir() if p.suffix != ".pkl"]


def test_corrupt_network_cache_is_rebuilt(tmp_path, caplog):
    from geo.network import load_network

    settings = Settings(cache_dir=tmp_path)
    osm = Path(__file__).parent / "fixtures" / "grid.osm"
    first = load_network(settings, osm)
    (cached,) = (tmp_path / "networks").glob("*.npz")
    blob = bytearray(cached.read_bytes())
    # damage the middle third (one byte could land in a zip header field nobody checks)
    for i in range(len(blob) // 3, 2 * len(blob) // 3, 64):
        blob[i] ^= 0xFF
    cached.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING, logger="geo.network"):
        again = load_network(settings, osm)
    assert "ignoring unreadable cache entry" in caplog.text
    assert again.source.kind == "osm_file"  # rebuilt from the file, not served from the cache
    np.testing.assert_array_equal(first.length_m, again.length_m)
