"""Beanguard's Streamlit dashboard: a thin layer of widgets and plots over :mod:`core`.

Run it with ``streamlit run dashboard/app.py`` (add ``-- --data-dir PATH`` for a local Beans folder).
No TensorFlow math lives here: attacks, predictions and activations all come from ``core``.
"""
