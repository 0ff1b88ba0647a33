"""The run-folder core: every file name of a run folder, atomic writes, status and locks, the stage registry, one lifecycle for every stage, child processes, progress callbacks, jobs for the dashboard.

- ``layout``: the run-folder contract (every file and folder name).
- ``runs``: a run folder: atomic writes, status, history, metrics, the per-run lock.
- ``stages``: the stage registry (verbs, inputs, resume rules, exit codes).
- ``lifecycle``: start, stop, resume, the folder check before any write.
- ``children``, ``jobs``: child processes that end with their parent; detached stages for the dashboard.
- ``progress``: the ``Progress`` callback type; ``distribute``: ``tf.distribute`` strategies.
- ``audit_files``: the synthesis audit's files in a stage-1 run (read by stage 2's training sets).

Imports only ``melanet.config`` (and the low ``melanet.common``) from the rest of the package.
"""
