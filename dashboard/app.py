"""Beanguard: attack a bean-leaf classifier live and watch adversarial training (NSL) hold up.

    streamlit run dashboard/app.py                          # Beans from $BEANS_DATA_DIR, else TFDS
    streamlit run dashboard/app.py -- --data-dir PATH       # a local <root>/<split>/<class>/*.jpg folder

The class sees the run the teacher chose (``core.runs``; by default the shipped pair from
``$BEANGUARD_CHECKPOINT_DIR`` or ``checkpoints/``). Layout follows Streamlit's
demo apps: title and intro, controls in the sidebar, results in sections in the main area.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` only puts dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import core  # noqa: E402,F401  (sets up TensorFlow with legacy Keras before anything else)
import streamlit as st  # noqa: E402

from core import checkpoints, data  # noqa: E402

from dashboard import resources, retrain_panel, runs_view  # noqa: E402
from dashboard.panels import live_attack  # noqa: E402
from dashboard.sidebar import pick_image  # noqa: E402

INTRO = (
    "Change a leaf photo by amounts you cannot see and watch a normally trained model fall for it — "
    "then try the same on a model trained with adversarial regularization (Neural Structured Learning)."
)


def models_caption(pair: checkpoints.ModelPair) -> str:
    """Where the models came from, in one line (metadata may lack any field)."""
    metadata = pair.metadata
    config = metadata.get("config", {})
    parts = [f"Models trained {metadata.get('trained_at', 'at an unknown time')}"]
    if config:
        parts.append(f"{config.get('epochs', '?')} + {config.get('adversarial_epochs', '?')} epochs")
        parts.append(f"NSL multiplier {config.get('multiplier', '?')}, {config.get('adv_norm', '?')} norm")
    parts.append(f"input {resources.image_size(pair)} px")
    return " · ".join(parts)


def render_main(folder: Path, data_dir: Path | None) -> int | None:
    """Everything except retraining; returns the models' input size, or None (with a message)
    when the models are missing or broken."""
    try:
        pair = resources.current_models(folder)
    except checkpoints.CheckpointMismatch as error:
        st.info(f"New models are being saved; reload the page in a few seconds. ({error})")
        return None
    except checkpoints.CheckpointError as error:
        if all(not (folder / name).exists() for name in checkpoints.MODEL_FILES.values()):
            st.warning(
                f"No trained models in `{folder}` yet. Train them with `python -m core.train` "
                "(add `--data-dir PATH` for a local Beans folder), or use **Retrain the models** in the "
                "sidebar (teacher passcode needed). The page picks them up as soon as they are saved."
            )
        else:
            st.error(str(error))
        return None
    st.caption(models_caption(pair))
    size = resources.image_size(pair)
    try:
        split = resources.load_test_split(str(data_dir) if data_dir is not None else None, size)
    except data.DataError as error:
        st.error(str(error))
        return size
    class_names = tuple(pair.metadata.get("class_names") or data.CLASS_NAMES)
    with st.sidebar:
        sample = pick_image(split, class_names, data_dir, size)
    if sample is None:
        st.info("Pick a test image or upload a photo in the sidebar to start.")
        return size
    if sample.warning:
        st.warning(sample.warning)
    live_attack(pair, sample, split, f"{data_dir or 'tfds'}@{size}", class_names)
    return size


def main() -> None:
    st.set_page_config(page_title="Beanguard", page_icon="🫘", layout="wide")
    st.title("Beanguard")
    st.markdown(INTRO)
    folder = runs_view.class_folder()
    data_dir = resources.data_dir_setting()
    render_main(folder, data_dir)
    runs_view.render(data_dir)
    with st.sidebar:
        retrain_panel.render(data_dir)


main()
