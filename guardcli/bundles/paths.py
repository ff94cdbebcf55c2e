"""Where guardcli keeps things on the user's disk (XDG locations, overridable by the usual
variables): the config file, installed model bundles and the bundle hash cache."""

from __future__ import annotations

import os
from pathlib import Path


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "guardcli"


def config_file() -> Path:
    return config_dir() / "config.json"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "guardcli"


def models_dir() -> Path:
    """Installed bundles, one folder each, named as ``--model NAME`` names them."""
    return cache_dir() / "models"


def hash_cache_file() -> Path:
    """sha256 of verified bundle files: see guardcli.bundles.hashcache (keyed so that an mtime
    reset cannot fool it)."""
    return cache_dir() / "hashes.json"
