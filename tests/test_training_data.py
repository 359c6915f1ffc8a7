"""AffectNet-format and image-folder loaders: parsing, EMOCA crop, augmentations, skip-and-report."""
import logging

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

import training_fixtures as tfx  # noqa: E402
from emoca_edge import crop as crop_mod  # noqa: E402
from emoca_edge.training.data import AffectNetDataset, Augmentation, ImageFolderDataset, collate_skip  # noqa: E402
from emoca_edge.training.data.common import FLIP68  # noqa: E402


@pytest.fixture(scope="module")
def affectnet():
    return tfx.synthetic_affectnet()


def _csv_rows(path):
    lines = path.read_text().splitlines()[1:]
    return [ln.split(",") for ln in lines]


def test_affectnet_rows_labels_and_skips(affectnet, caplog):
    with caplog.at_level(logging.WARNING, logger="emoca_edge.training.data"):
        ds = AffectNetDataset(affectnet, "training")
    # 8 renders + corrupt + missing rows kept; the code-9 row ignored; the malformed row reported
    assert len(ds) == 10 and ds.ignored_codes == 1
    assert len(ds.skipped_rows) == 1 and "facial_landmarks has 3" in ds.skipped_rows[0][1]
    assert "training.csv:13" in caplog.text
    rows = _csv_rows(affectnet / "training.csv")
    lab = ds.labels()
    np.testing.assert_array_equal(lab["expression"][:8], [int(r[6]) for r in rows[:8]])
    np.testing.assert_allclose(lab["valence"][:8], [float(r[7]) for r in rows[:8]], atol=1e-6)
    # The corrupt and the missing image are reported and give None, never an exception
    with caplog.at_level(logging.WARNING, logger="emoca_edge.training.data"):
        assert ds[8] is None and ds[9] is None
    assert any("corrupt.jpg" in k for k in ds.bad.items) and any("missing.png" in k for k in ds.bad.items)
    assert "not a readable image" in caplog.text and "no such image file" in caplog.text
    batch = collate_skip([ds[0], ds[8], ds[1]])
    assert batch["image"].shape == (2, 3, 224, 224) and batch["landmarks"].shape == (2, 68, 3)
    assert collate_skip([ds[8], ds[9]]) is None


def test_affectnet_crop_is_emoca_convention(affectnet):
    ds = AffectNetDataset(affectnet, "validation")
    path = ds.rows[0][0]
    lmk = ds.landmarks(0)
    s = ds[0]
    img = cv2.cvtColor(cv2.imread(str(affectnet / "images" / path)), cv2.COLOR_BGR2RGB)
    t = crop_mod.crop_transform(lmk, "deca68", 224)
    np.testing.assert_array_equal((s["image"] * 255).round().astype(np.uint8).transpose(1, 2, 0),
                                  crop_mod.warp(img, t))
    np.testing.assert_allclose(s["landmarks"][:, :2], crop_mod.to_crop(lmk, t), atol=1e-4)
    # The deca68 box: landmark extent x 1.1 x 1.25 maps onto the crop's pixel centres 0.5 .. 223.5
    lo, hi = s["landmarks"][:, :2].min(0), s["landmarks"][:, :2].max(0)
    side = np.floor(((lmk.max(0) - lmk.min(0)).sum() / 2) * 1.1 * 1.25)
    np.testing.assert_allclose(hi - lo, (lmk.max(0) - lmk.min(0)) * 223 / side, rtol=1e-5)


def test_augmentation_maps_landmarks_and_is_deterministic(affectnet):
    aug = Augmentation(scale=(1.1, 1.1), rotate=(10, 10), translate=(0.05, 0.05), photometric=False)
    ds = AffectNetDataset(affectnet, "validation", augmentation=aug, seed=3)
    plain = AffectNetDataset(affectnet, "validation")
    a, p = ds[1], plain[1]
    # Expected: plain-crop landmarks rotated by 10 deg, scaled 1.1 about (112, 112), shifted by 0.05*224
    r = np.deg2rad(10.0)
    rot = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]]) * 1.1
    expect = (p["landmarks"][:, :2] - 112.0) @ rot.T + 112.0 + 0.05 * 224
    np.testing.assert_allclose(a["landmarks"][:, :2], expect, atol=1e-3)
    again = AffectNetDataset(affectnet, "validation", augmentation=Augmentation(), seed=3)
    b1, b2 = again[2]["image"], AffectNetDataset(affectnet, "validation", augmentation=Augmentation(), seed=3)[2]["image"]
    np.testing.assert_array_equal(b1, b2)
    again.set_epoch(1)
    assert not np.array_equal(again[2]["image"], b1)  # a new epoch draws new augmentations


def test_flip_map_is_an_involution_and_mirrors():
    np.testing.assert_array_equal(FLIP68[FLIP68], np.arange(68))
    aug = Augmentation(scale=(1, 1), rotate=(0, 0), translate=(0, 0), flip=True, photometric=False)
    rng = np.random.default_rng(0)
    while True:  # draw until the flip branch is taken (p = 0.5)
        m, flipped = aug.similarity(224, rng)
        if flipped:
            break
    np.testing.assert_allclose(m, [[-1, 0, 224], [0, 1, 0]], atol=1e-12)


def test_affectnet_header_and_missing_csv(tmp_path):
    with pytest.raises(FileNotFoundError, match="training.csv"):
        AffectNetDataset(tmp_path, "training")
    (tmp_path / "training.csv").write_text("path,expression\nx.png,1\n")
    with pytest.raises(ValueError, match=r"training.csv: CSV header lacks columns \['subDirectory_filePath'"):
        AffectNetDataset(tmp_path, "training")


def test_image_folder(tmp_path, affectnet):
    src = sorted((affectnet / "images" / "sub").glob("training_00[0-2].png"))
    for p in src:
        (tmp_path / p.name).write_bytes(p.read_bytes())
    rows = _csv_rows(affectnet / "training.csv")
    (tmp_path / "training_000.txt").write_text(" ".join(rows[0][5].split(";")))
    (tmp_path / "training_001.txt").write_text("1 2 3")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    ds = ImageFolderDataset(tmp_path)
    assert len(ds) == 4
    got = [ds[i] for i in range(4)]
    assert got[0] is None and got[2] is None  # broken.png; training_001 with a bad landmark file
    assert got[1]["landmarks"][:, 2].min() == 1.0  # cropped with its landmarks
    assert got[3]["landmarks"][:, 2].max() == 0.0 and got[3]["image"].shape == (3, 224, 224)
    assert any("training_001.txt" in v for v in ds.bad.items.values())
