"""Evaluation: predictions on a test split, metrics with confidence intervals, paired tests, calibration,
operating points, uncertainty, subgroups, external validation and comparison tables."""
