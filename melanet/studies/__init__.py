"""Reader studies: dermatologists read the same test cases as a classifier run, blind and then aided.

- ``study.py``: the study folder (study.json, cases.csv, overlays/), names, each reader's case order.
- ``create.py``: ``melanet reader-study create``: cases, the model's outputs and overlays from a run.
- ``access.py``: reader and organiser codes (scrypt hashes only), revoke, void, close, washout, the wrong-code limit.
- ``responses.py``: answers saved at once and atomically to responses.csv; where a reader stands.
- ``results.py``: readers against the model (Wilson CIs, rating AUC, kappa, DeLong, aided vs unaided).
"""
