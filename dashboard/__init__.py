"""Helpers of the Streamlit dashboard (``app.py``, ``pages/``).

``discovery`` and ``artifacts`` only read run folders (no Streamlit, no TensorFlow), ``charts`` builds
plotly figures, ``ui`` holds the Streamlit pieces the pages share. The ``melanet`` library never
imports anything from here.
"""
