"""Model selection on the validation split: learning-rate plateaus, early stopping, best weights.

``SelectionState`` is the plain bookkeeping of Keras's ReduceLROnPlateau + EarlyStopping
(restore_best_weights), kept in one object so that it goes into every checkpoint and a resumed run
continues with the same counters. The metric is a validation metric (``val_auc`` by default): the
validation split is carved from the training set, never the test set.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass
class SelectionState:
    """Counters of one training run (saved in ``checkpoints/latest.json``)."""

    monitor: str = "val_auc"
    best_value: float | None = None
    best_epoch: int = 0
    epochs_without_improvement: int = 0  # early stopping counter
    epochs_on_plateau: int = 0  # learning-rate counter, reset by each reduction
    stopped_early: bool = False

    @property
    def mode(self) -> str:
        """'min' for losses, 'max' for everything else (AUC, accuracy)."""
        return "min" if self.monitor.endswith("loss") else "max"

    def is_improvement(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best_value is None:
            return True
        return value < self.best_value if self.mode == "min" else value > self.best_value

    def update(self, epoch: int, value: float, *, reduce_lr_patience: int, early_stopping_patience: int) -> dict[str, bool]:
        """Record epoch ``epoch``'s monitored value.

        Returns:
            ``{"improved": ..., "reduce_lr": ..., "stop": ...}``: save the best model, multiply the
            learning rate by the factor, stop training.
        """
        improved = self.is_improvement(value)
        reduce_lr = False
        if improved:
            self.best_value, self.best_epoch = float(value), epoch
            self.epochs_without_improvement = 0
            self.epochs_on_plateau = 0
        else:
            self.epochs_without_improvement += 1
            self.epochs_on_plateau += 1
            if self.epochs_on_plateau >= reduce_lr_patience:
                reduce_lr = True
                self.epochs_on_plateau = 0
        stop = self.epochs_without_improvement >= early_stopping_patience
        self.stopped_early = self.stopped_early or stop
        return {"improved": improved, "reduce_lr": reduce_lr, "stop": stop}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "SelectionState":
        fields = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in fields})
