"""Evaluation: metrics with confidence intervals, predictions on a test split, comparison tables."""
