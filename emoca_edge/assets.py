"""Built-in default assets (openly licensed models and sample media shipped in the package).

Assets live in groups, one folder each (``assets/<group>/``), and every group has a
``MANIFEST.json``: ``{"assets": {file_name: {sha256, bytes, source, license, notice, ...}}}``
with the path of its licence/NOTICE file. :func:`asset_path` verifies the checksum before
handing out a path, so a corrupted install fails with a clear message.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent / "assets"


class AssetError(RuntimeError):
    """A built-in asset is missing, unlisted or fails its checksum."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=None)
def manifest(group: str) -> dict:
    """The parsed manifest of an asset group (``assets/<group>/MANIFEST.json``)."""
    path = ASSETS_DIR / group / "MANIFEST.json"
    if not path.is_file():
        raise AssetError(f"asset manifest missing: {path}")
    return json.loads(path.read_text())


@lru_cache(maxsize=None)
def asset_path(name: str) -> Path:
    """Absolute path of the shipped asset ``"<group>/<file>"``, checksum-verified."""
    group, _, file_name = name.partition("/")
    entry = manifest(group).get("assets", {}).get(file_name)
    if entry is None:
        raise AssetError(f"{name!r} is not listed in {ASSETS_DIR / group / 'MANIFEST.json'}")
    path = ASSETS_DIR / group / file_name
    if not path.is_file():
        raise AssetError(f"built-in asset missing: {path} (reinstall emoca-edge)")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise AssetError(f"built-in asset {path} is corrupt: sha256 {digest} != expected {entry['sha256']}")
    return path
