"""Source, synthetic and their difference at the synthetic image's own size (the Synthesized lesions page)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from dashboard import artifacts, ui

DIFFERENCE_GAIN = 4  # |synthetic - source| is multiplied by this before display, so small changes show


@st.cache_data(show_spinner=False, max_entries=64)
def pair(run_path: str, source_id: str, synthetic_path: str, modified: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(source, synthetic), both (S, S, 3) uint8 at the synthetic PNG's size S: the source as synthesis saw it
    (the run's resize and colour constancy). None when either image cannot be read."""
    from melanet.data import preprocess

    del modified  # part of the cache key only
    config = artifacts.run_config(Path(run_path))
    original = ui.source_image(Path(run_path), source_id)
    try:
        with Image.open(synthetic_path) as opened:
            synthetic = np.asarray(opened.convert("RGB"))
        if config is None or original is None:
            return None
        source = preprocess.preprocess_image(original, synthetic.shape[0], resize=config.data.resize,
                                             color_constancy=config.data.color_constancy)
    except (OSError, ValueError):
        return None
    return source, synthetic


def difference(source: np.ndarray, synthetic: np.ndarray, gain: int = DIFFERENCE_GAIN) -> np.ndarray:
    """|synthetic - source| per channel times ``gain``, clipped to [0, 255]: (S, S, 3) uint8 (black = unchanged)."""
    change = np.abs(synthetic.astype(np.int16) - source.astype(np.int16)) * gain
    return np.clip(change, 0, 255).astype(np.uint8)


def show(run_path: Path, source_id: str, synthetic_path: Path) -> None:
    """Three images side by side at the synthetic image's own pixel size, with captions that say the size."""
    if not synthetic_path.is_file():
        st.caption(f"{synthetic_path.name}: image not found")
        return
    images = pair(str(run_path), source_id, str(synthetic_path), synthetic_path.stat().st_mtime)
    if images is None:
        st.caption(f"{source_id}: the source or the synthetic image cannot be read")
        return
    source, synthetic = images
    size = synthetic.shape[0]
    change = np.abs(synthetic.astype(np.int16) - source.astype(np.int16))
    columns = st.columns(3)
    columns[0].image(source, width=size, caption=f"benign source, {size} x {size} px (as synthesis saw it)")
    columns[1].image(synthetic, width=size, caption=f"synthetic 'malignant', {size} x {size} px")
    columns[2].image(difference(source, synthetic), width=size,
                     caption=f"difference |synthetic - source| x {DIFFERENCE_GAIN}, {size} x {size} px "
                             f"(black = unchanged; mean change {change.mean():.1f} of 255)")
