"""What an evaluated run reports about itself: ``model_card.md`` generated from the run's files, and ``metrics.json`` rewritten from saved predictions.

- ``model_card``: the card, from metrics, shortcuts, lesion focus, domain gap and similar-cases files.
- ``rescore``: ``melanet evaluate --from-predictions``: metrics.json and the card again, no weights needed.
"""
