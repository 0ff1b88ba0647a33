"""Global-average-pooled (GAP) features of a trained classifier: what its Dense head sees."""

from __future__ import annotations


import keras
import numpy as np

from melanet.runs.progress import Progress


def feature_model(model: keras.Model) -> keras.Model:
    """The classifier up to its (last) GlobalAveragePooling2D output: (N, H, W, 3) -> (N, C).

    ValueError when the model has no GlobalAveragePooling2D layer at its top level.
    """
    pooling = [layer for layer in model.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D)]
    if not pooling:
        names = ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in model.layers[-6:])
        raise ValueError(
            f"model '{model.name}' has no GlobalAveragePooling2D layer at its top level "
            f"(last layers: {names}); GAP features need the flat VGG-GAP classifier"
        )
    return keras.Model(model.input, pooling[-1].output, name=f"{model.name}_gap_features")


def extract_features(
    model: keras.Model,
    images: np.ndarray,
    *,
    batch_size: int = 16,
    progress: Progress | None = None,
    message: str = "features",
) -> np.ndarray:
    """GAP features of ``images``.

    Args:
        model: flat functional classifier, input (N, S, S, 3) float32 in [0, 1].
        images: (N, S, S, 3) uint8 in [0, 255] (scaled by 1/255 here, as the classifier expects).
    Returns:
        (N, C) float32, C = channels of the pooled layer (512 for VGG16); for a fold ensemble
        (``melanet.classifier.predict.Ensemble``) its K members' features side by side, (N, K * C).
    """
    members = getattr(model, "members", None)
    if members:
        return np.concatenate([extract_features(member, images, batch_size=batch_size, progress=progress,
                                                message=message) for member in members], axis=1)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (N, S, S, 3), got {images.shape}")
    extractor = feature_model(model)
    total = len(images)
    chunks = []
    for start in range(0, total, batch_size):
        batch = images[start : start + batch_size].astype(np.float32) / 255.0
        chunks.append(np.asarray(extractor(batch, training=False), dtype=np.float32))
        if progress is not None:
            progress(min(start + batch_size, total), total, message)
    if not chunks:
        return np.zeros((0, extractor.output.shape[-1]), dtype=np.float32)
    return np.concatenate(chunks, axis=0)
