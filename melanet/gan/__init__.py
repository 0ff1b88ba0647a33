"""Stage 1: CycleGAN benign <-> malignant (paper Section 2.1) and synthesis of malignant lesions.

- ``networks``: U-Net generators and PatchGAN discriminators, built from explicit sizes.
- ``losses``: least-squares adversarial, cycle-consistency and identity losses.
- ``model``: ``CycleGan``, the four networks, their optimizers and one training step.
- ``dataset``: the per-epoch balanced tf.data pipeline (undersampled benign, Algorithm 1 step 5).
- ``train``: the epoch loop with history, status, sample grids, checkpoints and resume.
- ``synthesis``: every benign training image -> synthetic malignant PNG + manifest; ``load_synthetic``.
"""
