"""What an evaluated run reports about itself: the ``melanet evaluate`` step and ``model_card.md`` generated from the run's files.

- ``evaluate_stage``: ``melanet evaluate``: the split scored (``melanet.evaluation``), duplicates of
  training images (``melanet.audits.leakage``), the similar-cases vote (``melanet.explain``), the card.
- ``rescore``: ``melanet evaluate --from-predictions``: metrics.json and the card again, no weights needed.
- ``model_card``: the card, from metrics, shortcuts, lesion focus, domain gap and similar-cases files;
  the CLI refreshes it after each step whose files it quotes.
"""
