"""2-D UMAP embeddings of GAP features and a static two-panel figure (the paper's Figure 9).

``umap`` is imported inside :func:`umap_embedding` only: importing it loads numba and TensorFlow's
parametric-UMAP support, which costs seconds that the rest of the package should not pay.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

logger = logging.getLogger(__name__)

TAGS = ("benign", "malignant", "synthetic")
TAG_COLOURS: dict[str, tuple[int, int, int]] = {
    "benign": (31, 119, 180),  # blue
    "malignant": (214, 39, 40),  # red
    "synthetic": (44, 160, 44),  # green
}


def umap_embedding(
    features: np.ndarray,
    *,
    seed: int,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
) -> np.ndarray:
    """2-D UMAP of ``features`` (N, C) -> (N, 2) float32; same seed and input, same coordinates.

    ``n_neighbors`` is capped at N - 1 so that small sets still embed. Fixing ``random_state``
    makes umap-learn run single-threaded, which is what makes it reproducible.
    """
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2:
        raise ValueError(f"expected features of shape (N, C), got {features.shape}")
    if len(features) < 3:
        raise ValueError(f"UMAP needs at least 3 points, got {len(features)}")
    if n_neighbors < 2:
        raise ValueError(f"n_neighbors must be >= 2, got {n_neighbors}")
    import umap  # lazy: see the module docstring

    neighbors = min(n_neighbors, len(features) - 1)
    if neighbors != n_neighbors:
        logger.info("UMAP: n_neighbors %d capped at %d for %d points", n_neighbors, neighbors, len(features))
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=neighbors,
        min_dist=min_dist,
        random_state=seed,
        n_jobs=1,
    )
    return np.asarray(reducer.fit_transform(features), dtype=np.float32)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def render_panels(
    panels: Sequence[Mapping[str, object]],
    *,
    panel_size: int = 520,
    point_radius: int = 3,
) -> Image.Image:
    """Scatter plots side by side, one per panel, coloured by tag, with a title and a legend each.

    Args:
        panels: each a mapping with ``title`` (str), ``coordinates`` (N, 2) float and ``tags``
            (N strings from ``TAGS``).
    Returns:
        an RGB ``PIL.Image`` of width ``len(panels) * panel_size`` and height ``panel_size + 40``.
    """
    if not panels:
        raise ValueError("render_panels needs at least one panel")
    header = 40
    image = Image.new("RGB", (panel_size * len(panels), panel_size + header), "white")
    draw = ImageDraw.Draw(image)
    title_font, legend_font = _font(18), _font(14)
    margin = 30
    for index, panel in enumerate(panels):
        left = index * panel_size
        coordinates = np.asarray(panel["coordinates"], dtype=np.float64).reshape(-1, 2)
        tags = list(panel["tags"])  # type: ignore[arg-type]
        draw.text((left + margin, 10), str(panel["title"]), fill="black", font=title_font)
        box = (left + margin, header, left + panel_size - margin, header + panel_size - 2 * margin)
        draw.rectangle(box, outline=(160, 160, 160))
        if len(coordinates):
            low, high = coordinates.min(axis=0), coordinates.max(axis=0)
            span = np.where(high > low, high - low, 1.0)
            inner = panel_size - 2 * margin - 2 * point_radius - 4
            scaled = (coordinates - low) / span * inner
            # Draw synthetic points first, then malignant, then benign, so the rarer originals stay visible.
            order = sorted(range(len(tags)), key=lambda i: {"synthetic": 0, "malignant": 2}.get(tags[i], 1))
            for i in order:
                x = box[0] + point_radius + 2 + scaled[i, 0]
                y = box[3] - point_radius - 2 - scaled[i, 1]  # y grows upwards, as in a plot
                colour = TAG_COLOURS.get(tags[i], (0, 0, 0))
                draw.ellipse((x - point_radius, y - point_radius, x + point_radius, y + point_radius), fill=colour)
        legend_y = header + panel_size - 2 * margin + 8
        legend_x = left + margin
        for tag in TAGS:
            count = tags.count(tag)
            if not count:
                continue
            draw.ellipse((legend_x, legend_y + 3, legend_x + 10, legend_y + 13), fill=TAG_COLOURS[tag])
            label = f"{tag} ({count})"
            draw.text((legend_x + 14, legend_y), label, fill="black", font=legend_font)
            legend_x += 24 + int(draw.textlength(label, font=legend_font))
    return image
