"""Beanguard's server: ``streamlit run dashboard/app.py`` (the page itself is ``dashboard/page_script.py``).

    streamlit run dashboard/app.py                          # Beans from $BEANS_DATA_DIR, else TFDS
    streamlit run dashboard/app.py -- --data-dir PATH       # a local <root>/<split>/<class>/*.jpg folder

Streamlit finds the ``st.App`` below and serves the page script with it; the app's lifespan starts
importing TensorFlow and the page's libraries as the server starts listening, while the first
browser is still loading (``dashboard/warm_start.py``), instead of after it connects.
"""

from __future__ import annotations

import sys
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` only puts dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import warm_start  # noqa: E402


@asynccontextmanager
async def _lifespan(_app):
    warm_start.begin()
    yield


app = st.App("page_script.py", lifespan=_lifespan)
