"""The shared vocabulary below every floor: the settings' choices, the training-set registry, how numbers are written.

- ``choices``: the ``Literal`` choices of the settings (backbones, optimizers, CAM methods, ...) and their tuples.
- ``training_sets``: the one registry of training sets (key, Table 1 name, what it holds, reproduction folder).
- ``formatting``: p-values, percents, intervals and plain numbers as text, for tables, cards, the CLI and pages.

Imports nothing from the rest of ``melanet``, so ``melanet.config`` and every package above it can import it.
"""
