"""The page's CSS: one screen at 1280×720, large verdicts, and presentation mode for a projector.

Streamlit sizes almost everything in rem, so presentation mode scales the root font size and
every text, control and picture grows with it; the verdicts get their own, larger type.
"""

from __future__ import annotations

import streamlit as st

# The models' colours on every panel, so a projected screen reads at a glance (the figures use them too).
MODEL_COLOURS = {"baseline": "#E8743B", "adversarial": "#19A979"}
CLEAN_COLOUR = "#A0A7B4"
WRONG_COLOUR = "#C62828"  # a wrong answer, as the verdicts' ✗
CLASS_COLOURS = ("#8E5BB5", "#B8860B", "#3C8D2F")  # the three diseases in class order (angular leaf spot, bean rust, healthy) where points are coloured by class

BASE = """
<style>
/* Less empty space above the content, so section 3's verdicts fit on the first screen. */
[data-testid="stMainBlockContainer"] { padding-top: 3.6rem; padding-bottom: 3rem; }
[data-testid="stMainBlockContainer"] [data-testid="stMarkdownContainer"]:has(> style) { display: none; }
[data-testid="stMainBlockContainer"] h2 { font-size: 1.45rem; padding: 0.35rem 0 0.2rem 0; }
[data-testid="stSidebarContent"] h2 { font-size: 1.2rem; padding: 0.2rem 0; }
[data-testid="stSidebarUserContent"] { padding-top: 0.5rem; }
.bg-title { font-size: 1.6rem; font-weight: 700; line-height: 1.2; }
.bg-tagline { font-size: 1rem; font-weight: 400; color: #4a5a51; }
[data-testid="stImageCaption"], [data-testid="stCaptionContainer"] { font-size: 0.85rem; }
/* The stage's pictures take a share of the viewport's height, so the verdicts below them stay on
   the first screen at 1280×720 and at 1024×768 alike, and grow on a taller screen. */
.st-key-stage_pictures [data-testid="stImage"] img, .st-key-why_pictures [data-testid="stImage"] img {
    width: auto !important; max-width: 100%; max-height: 31vh; margin: 0 auto; display: block; }
.st-key-stage_pictures [data-testid="stImageCaption"] { text-align: center; }
.bg-verdict { line-height: 1.25; }
.bg-verdict .bg-model { font-size: 1.05rem; font-weight: 700; }
.bg-verdict .bg-aside { font-size: 0.85rem; font-weight: 400; color: #4a5a51; }
.bg-verdict { padding-bottom: 0.5rem; }
.bg-verdict .bg-answer { font-size: clamp(1.4rem, 2.3vw, 2.4rem); font-weight: 800; margin: 0.1rem 0; }
.bg-verdict .bg-pct { font-variant-numeric: tabular-nums; font-weight: 700; font-size: 0.85em; }
.bg-verdict .bg-mark { font-size: 1.3rem; font-weight: 800; }
.bg-verdict.bg-right .bg-mark { color: #1a7f37; }
.bg-verdict.bg-wrong .bg-mark { color: #c62828; }
.bg-verdict.bg-unknown .bg-mark { color: #4a5a51; }
.bg-verdict .bg-small { font-size: 0.85rem; color: #4a5a51; }
.st-key-verdict_baseline, .st-key-verdict_adversarial { padding: 0.6rem 0.9rem 0.75rem 0.9rem !important; }
.st-key-verdict_baseline { border-left: 6px solid BASELINE_COLOUR !important; }
.st-key-verdict_adversarial { border-left: 6px solid ADVERSARIAL_COLOUR !important; }
.st-key-lesson_panel { background: #F1F5F2; }
.bg-gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(104px, 1fr)); gap: 8px; }
.bg-tile { display: flex; flex-direction: column; gap: 2px; padding: 4px; border: 1px solid #d5ddd8; border-radius: 6px;
           color: inherit; text-decoration: none; }
.bg-tile:hover { border-color: #19A979; }
.bg-tile img { width: 100%; border-radius: 4px; }
.bg-marks { display: flex; justify-content: space-between; font-size: 0.8rem; font-weight: 700; }
.bg-mark-held { color: #1a7f37; } .bg-mark-flipped { color: #c62828; } .bg-mark-wrong { color: #777; }
.bg-evaluation { width: 100%; border-collapse: collapse; }
.bg-evaluation th, .bg-evaluation td { text-align: left; padding: 0.15rem 0.4rem; border-bottom: 1px solid #e6ece8; }
.bg-evaluation abbr { text-decoration: none; border-bottom: 1px dotted #8a9a91; cursor: help; }
.bg-interval { color: #6b7b72; font-size: 0.85em; }
.bg-board { width: 100%; border-collapse: collapse; font-size: 1.15rem; }
.bg-board th { text-align: left; color: #4a5a51; font-weight: 600; border-bottom: 2px solid #d5ddd8; }
.bg-board td { padding: 0.2rem 0.4rem; border-bottom: 1px solid #e6ece8; vertical-align: middle; }
.bg-board img { width: 48px; height: 48px; border-radius: 4px; display: block; }
.bg-board .bg-nick { font-weight: 700; word-break: break-word; }
.bg-players { display: flex; flex-wrap: wrap; gap: 0.4rem; margin: 0.3rem 0 0.6rem 0; }
.bg-player { border: 1px solid #d5ddd8; border-radius: 999px; padding: 0.1rem 0.6rem; font-size: 1rem; }
.bg-code { font-size: 4.5rem; font-weight: 800; letter-spacing: 0.5rem; text-align: center; border: 3px solid ADVERSARIAL_COLOUR;
           border-radius: 12px; padding: 0.2rem 0.5rem; font-variant-numeric: tabular-nums; }
</style>
"""

# For a projector: the words a class reads grow (verdicts, section titles, captions, the lesson),
# the teacher's chrome shrinks away (tagline, captions of details), and the first screen still holds
# the photo, the change, the changed photo and both verdicts.
PRESENTATION = """
<style>
.bg-tagline, .st-key-models_caption { display: none; }
[data-testid="stMainBlockContainer"] h2 { font-size: 1.8rem; }
.st-key-stage_pictures [data-testid="stImage"] img { max-height: 28vh; }
.bg-verdict .bg-model { font-size: 1.35rem; }
.bg-verdict .bg-aside, .bg-verdict .bg-context { display: none; }
.bg-verdict .bg-answer { font-size: clamp(2rem, 3.4vw, 3.2rem); line-height: 1.1; }
.bg-verdict .bg-class { display: block; }
.bg-verdict .bg-pct { font-size: 0.8em; }
.bg-verdict .bg-mark { font-size: 1.6rem; }
.bg-verdict .bg-small { font-size: 1rem; }
.st-key-lesson_panel p { font-size: 1.25rem; }
</style>
"""

# During the lesson its box sits above the pictures: they give up the room.
LESSON = """
<style>
.st-key-stage_pictures [data-testid="stImage"] img { max-height: 24vh; }
.st-key-lesson_panel { padding: 0.5rem 1rem !important; gap: 0.3rem; }
.st-key-lesson_panel button { min-height: 2.2rem; padding: 0.2rem 0.6rem; white-space: nowrap; }
</style>
"""


def apply(presentation: bool, in_lesson: bool = False) -> None:
    """Inject the CSS (no visible element of its own). Markdown, not ``st.html``: the markdown
    renderer is already loaded when the first element arrives, so the verdicts never show unstyled."""
    css = BASE.replace("BASELINE_COLOUR", MODEL_COLOURS["baseline"]).replace("ADVERSARIAL_COLOUR", MODEL_COLOURS["adversarial"])
    css += (PRESENTATION if presentation else "") + (LESSON if in_lesson else "")
    st.markdown(css, unsafe_allow_html=True)
