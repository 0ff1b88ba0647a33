"""Lesion focus of Grad-CAM maps: Otsu threshold, lesion mask, mass share, the explain-folder summary."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from melanet.runs import layout
from melanet.explain import lesion_focus


def _brute_force_otsu(values: np.ndarray) -> float:
    """Between-class variance at every level 0-254, written the slow way."""
    best, best_level = -1.0, 0
    for level in range(255):
        below, above = values[values <= level], values[values > level]
        if below.size == 0 or above.size == 0:
            continue
        variance = below.size * above.size * (below.mean() - above.mean()) ** 2
        if variance > best:
            best, best_level = variance, level
    return float(best_level)


def test_otsu_matches_a_brute_force_search():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(60, 12, 400), rng.normal(170, 20, 900)]).clip(0, 255).round()
    assert lesion_focus.otsu_threshold(values) == _brute_force_otsu(values)
    assert 60 < lesion_focus.otsu_threshold(values) < 170


def _lesion_image(size: int = 32, pad_rows: int = 0) -> np.ndarray:
    """Skin (200, 170, 150) with a dark disc (70, 40, 30) of radius size/4 in the centre; black bars on top
    and bottom when ``pad_rows``."""
    image = np.empty((size, size, 3), np.uint8)
    image[:] = (200, 170, 150)
    yy, xx = np.mgrid[:size, :size]
    image[(yy - size / 2) ** 2 + (xx - size / 2) ** 2 <= (size / 4) ** 2] = (70, 40, 30)
    if pad_rows:
        image[:pad_rows] = 0
        image[-pad_rows:] = 0
    return image


def test_the_mask_is_the_dark_disc_and_never_the_padding():
    image = _lesion_image(pad_rows=4)
    mask = lesion_focus.lesion_mask(image)
    disc = np.all(image == (70, 40, 30), axis=-1)
    assert np.array_equal(mask, disc)  # the black bars are darker still, yet never lesion
    assert not mask[:4].any() and not mask[-4:].any()


def test_mass_share_of_maps_on_the_lesion_on_the_skin_and_uniform():
    image = _lesion_image(pad_rows=4)
    mask = lesion_focus.lesion_mask(image)
    assert lesion_focus.mass_share(mask.astype(float), mask) == pytest.approx(1.0)
    assert lesion_focus.mass_share((~mask).astype(float), mask) == pytest.approx(0.0)
    assert lesion_focus.mass_share(np.ones(mask.shape), mask) == pytest.approx(mask.mean())
    # a 4x4 map (block5 at 64 px) is compared with the mask resized to it
    small = np.zeros((4, 4))
    small[1:3, 1:3] = 1.0
    assert lesion_focus.mass_share(small, mask) == pytest.approx(1.0)
    assert np.isnan(lesion_focus.mass_share(np.zeros(mask.shape), mask))


def test_summarize_folder_writes_the_shares_per_outcome(tmp_path):
    run = tmp_path / "run"
    folder = run / layout.EXPLAIN_FOLDER
    (folder / "maps").mkdir(parents=True)
    (folder / "inputs").mkdir()
    image = _lesion_image()
    mask = lesion_focus.lesion_mask(image)
    rows = []
    for name, outcome, activation in (("a", "TP", mask.astype(np.float16)), ("b", "TP", np.ones(mask.shape)),
                                      ("c", "FN", (~mask).astype(np.float16))):
        Image.fromarray(image).save(folder / "inputs" / f"{name}.png")
        np.save(folder / "maps" / f"{name}.npy", activation)
        rows.append({"image": name, "outcome": outcome, "method": "gradcam", "layer": "block5_conv3",
                     "map_path": f"explain/maps/{name}.npy", "input_path": f"explain/inputs/{name}.png"})
    with (folder / layout.EXPLAIN_INDEX_NAME).open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = lesion_focus.summarize_folder(run, folder)
    assert summary["by_outcome"]["TP"]["n"] == 2
    assert summary["by_outcome"]["TP"]["mass_share"] == pytest.approx((1.0 + mask.mean()) / 2)
    assert summary["by_outcome"]["FN"]["mass_share"] == pytest.approx(0.0)
    assert summary["by_outcome"]["TP"]["area_fraction"] == pytest.approx(mask.mean())
    assert json.loads((run / layout.LESION_FOCUS_FILE).read_text()) == summary


def test_summarize_folder_without_an_index_names_the_folder(tmp_path):
    from melanet.runs import runs

    with pytest.raises(runs.RunError, match="run `melanet explain` first"):
        lesion_focus.summarize_folder(tmp_path, tmp_path / "explain")
