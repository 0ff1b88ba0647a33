"""Streamlit pieces the pages share: run pickers, empty-state messages, cached reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from melanet.explain import overlay

from dashboard import artifacts, discovery, glossary

NOT_A_DEVICE = "Research use only, not a medical device: never use these outputs to diagnose a patient."


def all_runs() -> list[discovery.RunEntry]:
    """Every run now on disk (cheap: a few stat calls; re-read on each rerun so new runs appear)."""
    return discovery.discover()


def no_runs(what: str, how: str) -> None:
    """The message a page shows when there is nothing to show yet: what is missing and what to do."""
    st.info(f"No {what} yet. {how}")


def how_to_get_runs(step: str) -> str:
    return (f"{step} on the **Train** page, or run `melanet reproduce --config configs/demo.yaml --run "
            f"runs/demo` in a terminal (the shipped demo lives in `{discovery.models_dir().name}/`).")


def pick_run(entries: list[discovery.RunEntry], label: str, key: str, index: int = 0) -> discovery.RunEntry:
    """A select box of runs by label; returns the chosen entry."""
    labels = [entry.label for entry in entries]
    chosen = st.selectbox(label, labels, index=min(index, len(labels) - 1), key=key)
    return entries[labels.index(chosen)]


@st.cache_data(show_spinner=False, max_entries=8)
def image_paths(data_root: str) -> dict[str, Path]:
    """Image id -> file of a data folder (cached: reading the index lists every image)."""
    return artifacts.image_paths(data_root)


@st.cache_data(show_spinner=False, max_entries=512)
def load_rgb(path: str, modified: float) -> np.ndarray | None:
    """An image as (H, W, 3) uint8 (cached by path and modification time)."""
    del modified  # part of the cache key only
    return artifacts.load_rgb(Path(path))


def show_image(path: Path | None, caption: str, **kwargs) -> None:
    """Show an image file, or say that it is missing."""
    if path is None or not path.is_file():
        st.caption(f"{caption}: image not found")
        return
    image = load_rgb(str(path), path.stat().st_mtime)
    if image is None:
        st.caption(f"{caption}: unreadable image {path.name}")
    else:
        kwargs.setdefault("width", "stretch")  # small (32-64 px) demo images would otherwise stay tiny
        st.image(image, caption=caption, **kwargs)


def source_image(run_path: Path, image_id: str) -> Path | None:
    """The original image of ``image_id`` in the data folder of the run's config."""
    config = artifacts.run_config(run_path)
    if config is None:
        return None
    return image_paths(config.data.root).get(image_id)


@st.cache_data(show_spinner=False, max_entries=32)
def load_original(path: str, modified: float, max_side: int = 1024) -> np.ndarray | None:
    """The original image upright and RGB, long side at most ``max_side`` (cached); None if unreadable."""
    del modified  # part of the cache key only
    try:
        return overlay.load_original(path, max_side=max_side)
    except (OSError, ValueError):  # BadImageError is a ValueError
        return None


SCALE_STYLE = "display:flex;justify-content:space-between;font-size:14px;max-width:320px;margin-top:-0.5rem"


def show_colour_scale() -> None:
    """The heat map's colour bar with its ends named in page text of 14 px (readable, unlike text drawn
    into the bar's image), and the plain-language caption."""
    st.image(overlay.colour_scale(width=320, labels=False), width=320)
    st.markdown(f'<div class="heatmap-scale" style="{SCALE_STYLE}"><span>low</span>'
                "<span>high: raised the malignant score most</span></div>", unsafe_allow_html=True)
    st.caption(overlay.HEATMAP_CAPTION)


def show_heatmap(original: np.ndarray, activation: np.ndarray, resize_mode: str, image_size: int, opacity: float,
                 title: str, layer: str | None = None) -> None:
    """A heat map over the original image in its own framing, its colour scale and the plain-language caption;
    the network ``layer`` it was computed on goes into a details box."""
    st.image(overlay.heatmap_on_original(original, activation, resize_mode, image_size, opacity=opacity),
             width="stretch", caption=title)
    show_colour_scale()
    if layer:
        with st.expander("Which network layer"):
            name = layer.split(" ")[0]
            st.markdown(f"Grad-CAM of the layer `{layer}`.",
                        help=glossary.help_for("Grad-CAM", *([name] if name in glossary.TERMS else [])))
