"""Audits: does the evidence hold? Synthetic images, shortcuts and leakage of training images into the test.

- ``synthesis_measures``: KID, nearest real images, the grouped realism probe; ``pixel_features``, ``separability``.
- ``synthesis_stage``: ``melanet audit-synthesis`` on a stage-1 run (its ``audit/`` files: ``melanet.runs.audit_files``).
- ``shortcuts``, ``shortcut_stage``: AUC on lesion-only and background-only images, robustness to perturbations.
- ``leakage``: test images that duplicate a training, validation or GAN-training image.
"""
