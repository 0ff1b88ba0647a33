"""Hand-made pixel features for a realism probe that no neural network stands behind.

The synthesis audit's main probe reads the GAP features of a network (the frozen backbone, or the
classifier trained on these very images). A second opinion from features that share nothing with
those networks guards against both missing an artefact the network is blind to and blaming one it
over-weights. Per image, over its valid pixels (exact-black padding bars, ``data.resize: pad``, left
out):

- colour: 16-bin histograms of R, G, B and of HSV hue, saturation and value (each sums to 1), and
  the mean and standard deviation of R, G, B (scaled to [0, 1]);
- sharpness and texture: a 16-bin histogram of the grey gradient magnitude (central differences,
  bins spaced on log(1 + magnitude)), and the variance of the 4-neighbour Laplacian;
- spectrum: the radially averaged log power spectrum of the grey image (mean removed, padding set
  to the mean so bars add no edge), in ``SPECTRUM_BINS`` rings from the lowest to the Nyquist
  frequency, centred on its own mean; and the share of power at the three Nyquist points
  (``(S/2, 0)``, ``(0, S/2)``, ``(S/2, S/2)``), where a transposed convolution's checkerboard lands.

``describe()`` names the columns; ``PIXEL_FEATURES_DESCRIPTION`` is the one-line summary the audit
writes.
"""

from __future__ import annotations

import numpy as np

from melanet.runs.progress import Progress

PROGRESS_EVERY = 64  # images between progress calls
HISTOGRAM_BINS = 16
SPECTRUM_BINS = 24
GRADIENT_LOG_MAX = np.log1p(255.0 * np.sqrt(2.0))  # the largest central-difference magnitude, on log(1 + m)
PIXEL_FEATURES_DESCRIPTION = (
    "hand-made pixel features (colour histograms and moments, gradient histogram, Laplacian variance, radial "
    "log power spectrum, Nyquist power share); no neural network"
)
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114])


def describe() -> list[str]:
    """The names of ``image_features``' columns, in order."""
    names = [f"{channel}_hist_{index}" for channel in ("r", "g", "b", "hue", "saturation", "value")
             for index in range(HISTOGRAM_BINS)]
    names += [f"{channel}_{moment}" for moment in ("mean", "std") for channel in ("r", "g", "b")]
    names += [f"gradient_hist_{index}" for index in range(HISTOGRAM_BINS)] + ["laplacian_variance"]
    names += [f"spectrum_{index}" for index in range(SPECTRUM_BINS)]
    names += ["nyquist_share_rows", "nyquist_share_columns", "nyquist_share_diagonal"]
    return names


def _histogram(values: np.ndarray, low: float, high: float) -> np.ndarray:
    counts, _ = np.histogram(values, bins=HISTOGRAM_BINS, range=(low, high))
    total = counts.sum()
    return counts / total if total else np.zeros(HISTOGRAM_BINS)


def _hsv(rgb: np.ndarray) -> np.ndarray:
    """(K, 3) RGB in [0, 1] -> (K, 3) HSV in [0, 1] (hue 0 for greys)."""
    maximum, minimum = rgb.max(axis=1), rgb.min(axis=1)
    spread = maximum - minimum
    red, green, blue = rgb.T
    hue = np.zeros(len(rgb))
    chromatic = spread > 0
    safe = np.where(chromatic, spread, 1.0)
    hue = np.where(maximum == red, ((green - blue) / safe) % 6.0, hue)
    hue = np.where((maximum == green) & (maximum != red), (blue - red) / safe + 2.0, hue)
    hue = np.where((maximum == blue) & (maximum != red) & (maximum != green), (red - green) / safe + 4.0, hue)
    hue = np.where(chromatic, hue / 6.0, 0.0)
    saturation = np.where(maximum > 0, spread / np.where(maximum > 0, maximum, 1.0), 0.0)
    return np.stack([hue, saturation, maximum], axis=1)


def _spectrum(grey: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Ring means of log(1 + power) (``SPECTRUM_BINS``, centred) and the three Nyquist power shares."""
    size_y, size_x = grey.shape
    mean = grey[valid].mean() if valid.any() else 0.0
    centred = np.where(valid, grey, mean) - mean
    power = np.abs(np.fft.fft2(centred)) ** 2
    frequency_y = np.fft.fftfreq(size_y)[:, None]
    frequency_x = np.fft.fftfreq(size_x)[None, :]
    radius = np.sqrt(frequency_y ** 2 + frequency_x ** 2) / 0.5  # 1.0 = Nyquist along an axis
    rings = np.minimum((radius * SPECTRUM_BINS).astype(np.int64), SPECTRUM_BINS - 1)
    keep = radius > 0  # the mean (zero frequency) is removed already
    log_power = np.log1p(power)
    sums = np.bincount(rings[keep], weights=log_power[keep], minlength=SPECTRUM_BINS)
    counts = np.bincount(rings[keep], minlength=SPECTRUM_BINS)
    profile = np.divide(sums, counts, out=np.zeros(SPECTRUM_BINS), where=counts > 0)
    total = power.sum()
    half_y, half_x = size_y // 2, size_x // 2
    shares = [power[half_y, 0], power[0, half_x], power[half_y, half_x]]
    shares = [float(value / total) if total > 0 else 0.0 for value in shares]
    return np.concatenate([profile - profile.mean(), shares])


def image_features(image: np.ndarray) -> np.ndarray:
    """The pixel features (``len(describe())``,) float64 of one (H, W, 3) uint8 RGB image."""
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    if min(image.shape[:2]) < 3:
        raise ValueError(f"pixel features need an image of at least 3 x 3 pixels, got {image.shape[:2]}")
    valid = image.max(axis=-1) > 0
    if not valid.any():  # an all-black image: no content, only its (flat) spectrum
        valid = np.ones(image.shape[:2], dtype=bool)
    rgb = image.astype(np.float64) / 255.0
    pixels = rgb[valid]
    colour = [_histogram(pixels[:, channel], 0.0, 1.0) for channel in range(3)]
    hsv = _hsv(pixels)
    colour += [_histogram(hsv[:, channel], 0.0, 1.0) for channel in range(3)]
    moments = np.concatenate([pixels.mean(axis=0), pixels.std(axis=0)])

    grey = image.astype(np.float64) @ GREY_WEIGHTS
    gradient_y, gradient_x = np.zeros_like(grey), np.zeros_like(grey)
    gradient_y[1:-1] = (grey[2:] - grey[:-2]) / 2.0
    gradient_x[:, 1:-1] = (grey[:, 2:] - grey[:, :-2]) / 2.0
    laplacian = np.zeros_like(grey)
    laplacian[1:-1, 1:-1] = (grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:]
                             - 4.0 * grey[1:-1, 1:-1])
    # interior pixels whose whole 3 x 3 neighbourhood is valid: no bar edge, no image edge
    interior = np.zeros_like(valid)
    interior[1:-1, 1:-1] = (valid[1:-1, 1:-1] & valid[:-2, 1:-1] & valid[2:, 1:-1]
                            & valid[1:-1, :-2] & valid[1:-1, 2:])
    magnitude = np.log1p(np.hypot(gradient_y, gradient_x)[interior])
    gradient = _histogram(magnitude, 0.0, GRADIENT_LOG_MAX)
    laplacian_variance = float(laplacian[interior].var() / 255.0 ** 2) if interior.any() else 0.0
    return np.concatenate([*colour, moments, gradient, [laplacian_variance], _spectrum(grey, valid)])


def pixel_features(images, *, progress: Progress | None = None, message: str = "pixel features") -> np.ndarray:
    """(N, C) float64 pixel features of (N, H, W, 3) uint8 images (an array, or anything indexable with
    len, e.g. ``DiskImages``); ``progress(done, N, message)`` every ``PROGRESS_EVERY`` images and at the end."""
    total = len(images)
    rows = np.zeros((total, len(describe())))
    for index in range(total):
        rows[index] = image_features(np.asarray(images[index]))
        if progress is not None and ((index + 1) % PROGRESS_EVERY == 0 or index + 1 == total):
            progress(index + 1, total, message)
    return rows
