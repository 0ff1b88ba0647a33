"""Data layer: read ISIC-2016 / plain folders, validate, preprocess, cache, split, download."""
