"""Reproductions: every stage of Table 1 in one results folder, and the whole reproduction repeated over seeds.

- ``reproduction``: ``melanet reproduce``: the stages as child processes, resumable, then the table.
- ``repeated_seeds``: ``melanet reproduce --seeds N``: one reproduction per seed, then the summary.
- ``seeds_summary``: mean +- SD, per-seed AUCs and DeLong p-values over the seed folders.
"""
