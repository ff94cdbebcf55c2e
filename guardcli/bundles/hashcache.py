"""The bundle hash cache: a 2 GB bundle is hashed once, not at every load.

An entry is trusted only while the file is provably the one that was hashed. Its key is the
resolved path with the file's device, inode, size, mtime and ctime. mtime alone can be set
back by anyone who can write the file (``touch -d``, ``os.utime``), so a byte flipped with its
mtime restored would pass; ctime is set by the kernel on every write and every ``utime`` call
and cannot be set by a user, so the same edit changes the key and the file is hashed again.

ctime has the filesystem's timestamp granularity (a few milliseconds on Linux), so a file
changed within the same tick as the hash would keep its key. As git does with its index
("racy git"), a file whose ctime or mtime is less than ``RACY_NS`` old when hashed is not
remembered: the next verify hashes it again, by which time any later change is visible.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from guardcli.bundles.paths import hash_cache_file

RACY_NS = 2_000_000_000  # a hash of a file changed this recently is not remembered


def cache_key(path: Path, stat: os.stat_result) -> str:
    return "|".join(
        str(part)
        for part in (
            path.resolve(),
            stat.st_dev,
            stat.st_ino,
            stat.st_size,
            stat.st_mtime_ns,
            stat.st_ctime_ns,
        )
    )


def cached_hash(path: Path, compute: Callable[[Path], str]) -> str:
    """sha256 of ``path`` from the cache when its key still matches, else ``compute``d."""
    stat = path.stat()
    key = cache_key(path, stat)
    cache = _load()
    if key in cache:
        return cache[key]
    digest = compute(path)
    if time.time_ns() - max(stat.st_ctime_ns, stat.st_mtime_ns) < RACY_NS:
        return digest  # too fresh to tell a later change from this one: do not remember
    if cache_key(path, path.stat()) != key:
        return digest  # changed while hashing
    cache[key] = digest
    _store(cache)
    return digest


def _load() -> dict[str, str]:
    try:
        cache = json.loads(hash_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _store(cache: dict[str, str]) -> None:
    cache_path = hash_cache_file()
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache), encoding="utf-8")
        tmp.replace(cache_path)
    except OSError:
        pass  # a read-only home still verifies, just without the cache
