"""Section "What can be proven": randomized smoothing (``core.certify``, Cohen et al. 2019) for the photo
on screen: each model's answer when it votes over noisy copies of the photo, and the size of change
that provably cannot alter that vote.

An attack can only show that a photo CAN be fooled; this proves, for the smoothed model, that no
change below a radius can. It costs about 1100 forward passes per model and noise level, so it runs
on a button, once per photo and model pair, kept in the process-wide result store.
"""

from __future__ import annotations

import math
from typing import Sequence

import streamlit as st

from core import certify
from core.attacks import budget_label
from core.checkpoints import ModelPair

from dashboard import resources
from dashboard.page import Page, Sample
from dashboard.settings import MODEL_NAMES
from dashboard.wording import MODEL_SHORT, MODEL_TITLES, class_title

PROVEN, MOST = "proven safe up to (L2)", "most provable (L2)"  # table columns
SIGMAS = (0.12, 0.25)  # noise spread σ in [0, 1] pixel units (Cohen et al.'s CIFAR-10 levels)
N0, N, ALPHA = 100, 1000, 0.001  # votes to pick the answer, votes to bound it, the chance the proof is wrong
HOW = (
    f"Randomized smoothing (Cohen, Rosenfeld & Kolter 2019): the smoothed model answers what the model says most often on "
    f"copies of the photo with Gaussian noise of spread σ. {N0} noisy copies pick its answer, {N} fresh ones count how often it "
    f"wins; if it wins clearly enough, no change of overall size (L2) below the radius σ·Φ⁻¹(p) can alter that answer, "
    f"where p is a lower bound on how often it wins that holds with probability {1 - ALPHA:.1%}. Otherwise the smoothed model abstains."
)


def render(page: Page) -> None:
    if page.answers_hidden:
        st.caption("Hidden while the class votes: it would give the answer away.")
        return
    change = page.result.perturbations[MODEL_NAMES[0]].norms["l2"]
    _proofs(page.pair, page.sample, page.class_names, float(change))


def coverage_sentence(shape: tuple[int, ...]) -> str:
    """Why an L2 proof says little about L∞: the same radius spread over every pixel is tiny."""
    height, width, channels = shape
    root = math.sqrt(height * width * channels)
    return (
        f"An L2 radius r covers every L∞ change only up to r/√({height}·{width}·{channels}) = r/{root:.1f}: changing every "
        f"value by e has overall size e·{root:.1f}. So a radius of 1 rules out only the changes of at most "
        f"{budget_label('infinity', certify.linf_equivalent(1.0, shape))} per pixel."
    )


@st.fragment
def _proofs(pair: ModelPair, sample: Sample, class_names: Sequence[str], change: float) -> None:
    store = resources.result_store()
    key = ("certify", pair.version, sample.key)
    found = store.get(key)
    if found is None:
        ask = st.empty()  # the offer goes once the proof is there
        with ask.container():
            st.caption(
                "An attack can only show that a photo *can* be fooled. Here is a proof that it cannot — for a slightly different model "
                "that answers by majority vote over noisy copies of the photo. About 1100 noisy copies per model and noise level: some seconds."
            )
            pressed = st.button("Prove what can be proven for this photo", key="certify_button", type="primary", help=HOW)
        if not pressed:
            return
        ask.empty()
        bar = st.progress(0.0, text="Starting…")
        found = {}
        steps = [(name, sigma) for name in MODEL_NAMES for sigma in SIGMAS]
        for done, (name, sigma) in enumerate(steps):
            bar.progress(done / len(steps), text=f"The {MODEL_SHORT[name]}, noise σ = {sigma}: {N0 + N} noisy copies")
            found[(name, sigma)] = certify.certify(pair[name], sample.image, sigma, n0=N0, n=N, alpha=ALPHA)
        bar.empty()
        store.put(key, found)
    rows = [_row(name, sigma, found[(name, sigma)], sample.true_label, class_names, sample.image.shape) for name in MODEL_NAMES for sigma in SIGMAS]
    st.dataframe(rows, hide_index=True, width="stretch")
    st.markdown(_change_sentence(found, change), help=HOW)
    st.caption(
        coverage_sentence(sample.image.shape) + f" {N} votes can never prove more than *{MOST}*, however sure the model is: "
        "proving more takes more votes. Models trained without noise often abstain, or vote for one disease whatever the photo: "
        "compare a run trained on noisy photos (`--noise-sigma`, such as the example *nsl-noise-0.12* in *Compare runs*)."
    )


def _row(name: str, sigma: float, proof: certify.Certification, true_label: int | None, class_names: Sequence[str], shape: tuple[int, ...]) -> dict:
    if proof.label is None:
        answer, radius, linf = "abstains (too close to call)", "–", "–"
    else:
        mark = "" if true_label is None else (" ✓" if proof.label == true_label else " ✗ wrong")
        answer = f"{class_title(class_names[proof.label])}{mark}"
        radius, linf = budget_label("l2", proof.radius), budget_label("infinity", certify.linf_equivalent(proof.radius, shape))
    return {
        "model": MODEL_TITLES[name], "noise σ": sigma, "smoothed answer": answer, PROVEN: radius, "so every L∞ change up to": linf,
        "votes": f"{proof.counts[proof.label] if proof.label is not None else max(proof.counts)} of {proof.n}",
        MOST: budget_label("l2", certify.max_certifiable_radius(sigma, proof.n, proof.alpha)),
    }  # fmt: skip


def _change_sentence(found: dict, change: float) -> str:
    """Whether the change on screen is inside any proof."""
    inside = [f"the {MODEL_SHORT[name]} at σ = {sigma}" for (name, sigma), proof in found.items() if proof.label is not None and change < proof.radius]
    size = budget_label("l2", change)
    if change == 0:
        return "There is no change on screen now; move the budget ε to compare its size with the proven radii."
    if inside:
        return f"The change above has an overall size (L2) of **{size}**: too small to alter the smoothed answer of {', '.join(inside)} — proven, not just tried."
    return f"The change above has an overall size (L2) of **{size}**: larger than every proven radius here, so nothing is proven about it."
