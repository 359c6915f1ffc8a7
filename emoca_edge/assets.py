"""Built-in default assets (openly licensed models and sample media shipped in the package).

``emoca_edge/assets/MANIFEST.json`` lists every shipped file with its sha256, source,
licence and the path of its licence/NOTICE file; :func:`asset_path` verifies the checksum
before handing out a path, so a corrupted install fails with a clear message.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
MANIFEST = ASSETS_DIR / "MANIFEST.json"


class AssetError(RuntimeError):
    """A built-in asset is missing, unlisted or fails its checksum."""


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=None)
def manifest() -> dict:
    """The parsed asset manifest: {"assets": {relative_path: {sha256, source, license, notice, ...}}}."""
    if not MANIFEST.is_file():
        raise AssetError(f"asset manifest missing: {MANIFEST}")
    return json.loads(MANIFEST.read_text())


@lru_cache(maxsize=None)
def asset_path(name: str) -> Path:
    """Absolute path of the shipped asset ``name`` (relative to assets/), checksum-verified."""
    entry = manifest().get("assets", {}).get(name)
    if entry is None:
        raise AssetError(f"{name!r} is not listed in {MANIFEST}")
    path = ASSETS_DIR / name
    if not path.is_file():
        raise AssetError(f"built-in asset missing: {path} (reinstall emoca-edge)")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise AssetError(f"built-in asset {path} is corrupt: sha256 {digest} != expected {entry['sha256']}")
    return path
