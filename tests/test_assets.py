"""Built-in assets: every shipped file is accounted for (sha256, size, source, licence, notice)
and a corrupted or unlisted asset fails with a message naming it."""
from __future__ import annotations

import hashlib
import json
import shutil

import pytest

import emoca_edge.assets as assets

GROUPS = sorted(p.name for p in assets.ASSETS_DIR.iterdir() if p.is_dir() and not p.name.startswith("__"))
METADATA = {"MANIFEST.json", "LICENSE", "NOTICE", "CONVERSION.md"}


def test_expected_groups_present():
    assert {"mediapipe", "fer", "samples"} <= set(GROUPS)


@pytest.mark.parametrize("group", GROUPS)
def test_every_file_listed_and_verified(group):
    folder = assets.ASSETS_DIR / group
    entries = json.loads((folder / "MANIFEST.json").read_text())["assets"]
    shipped = {p.name for p in folder.iterdir() if p.is_file()} - METADATA
    assert shipped == set(entries), f"{group}: files not in MANIFEST.json or listed but missing"
    assert (folder / "NOTICE").is_file()
    for name, entry in entries.items():
        for field in ("sha256", "bytes", "source", "license", "notice"):
            assert entry.get(field), f"{group}/{name}: manifest field {field!r} missing"
        data = (folder / name).read_bytes()
        # independent of assets.sha256_file: hash the whole file at once
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
        assert assets.asset_path(f"{group}/{name}") == folder / name
        if "license_file" in entry:
            assert (folder / entry["license_file"]).is_file()


@pytest.fixture
def asset_copy(tmp_path, monkeypatch):
    """The samples group copied to a temporary assets dir that the module then reads."""
    shutil.copytree(assets.ASSETS_DIR / "samples", tmp_path / "samples")
    monkeypatch.setattr(assets, "ASSETS_DIR", tmp_path)
    assets.manifest.cache_clear()
    assets.asset_path.cache_clear()
    yield tmp_path
    assets.manifest.cache_clear()
    assets.asset_path.cache_clear()


def test_corrupt_asset_is_refused(asset_copy):
    path = asset_copy / "samples" / "astronaut.jpg"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(assets.AssetError, match=r"astronaut\.jpg is corrupt: sha256"):
        assets.asset_path("samples/astronaut.jpg")


def test_missing_and_unlisted_assets(asset_copy):
    (asset_copy / "samples" / "grace_hopper.jpg").unlink()
    with pytest.raises(assets.AssetError, match="grace_hopper.jpg.*reinstall"):
        assets.asset_path("samples/grace_hopper.jpg")
    with pytest.raises(assets.AssetError, match="'samples/nobody.jpg' is not listed"):
        assets.asset_path("samples/nobody.jpg")
    with pytest.raises(assets.AssetError, match="manifest missing"):
        assets.asset_path("nogroup/x.onnx")
