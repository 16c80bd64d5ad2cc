"""Gradient attacks (through NSL) and natural corruptions, on float32 images in [0, 1].

Two entry points, in the spirit of Foolbox's small API:
- :func:`perturb` is NSL's primitive: FGSM when ``iterations == 1``, else PGD that takes
  ``iterations`` steps of ``step_size`` and projects back into the ``epsilon`` ball.
- :func:`attack` is the threat model people talk about ("PGD-10 at L-inf eps 8/255"): it picks
  the per-step size (2.5 * eps / iterations, Madry et al.) and random start for PGD.

L-inf and L2 directions come from ``nsl.lib.gen_adv_neighbor`` (the same code NSL trains with).
L1 does not: NSL's L1 step spends the whole budget on one coordinate, which the box then caps, so
L1 uses the sparse attack of :mod:`core.sparse_l1` (greedy fill for one step, SLIDE for more).
Every result satisfies ``||x_adv - x||_norm <= epsilon`` and ``0 <= x_adv <= 1``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from core.compat import nsl, tf, traced
from core.sparse_l1 import sparse_l1_attack

NORMS: tuple[str, ...] = ("infinity", "l2", "l1")
NORM_SLUGS = {"infinity": "linf", "l2": "l2", "l1": "l1"}  # in links, file names and row ids
# Budgets are kept in model units (pixels in [0, 1]); people read L∞ budgets in brightness steps
# out of 255, so that norm is shown (and set on sliders) in those units.
DISPLAY_SCALE = {"infinity": 255.0, "l2": 1.0, "l1": 1.0}
DEFAULT_BUDGETS = {"infinity": 8.0 / 255, "l2": 1.0, "l1": 10.0}  # the budgets a lesson starts from
DEFAULT_PGD_STEPS = 10  # the dashboard's and the curves' PGD
# Whose gradients compute a change: one model's (a transfer attack for the other), or each model its own.
ATTACKERS: tuple[str, ...] = ("baseline", "adversarial", "self")
CORRUPTIONS: tuple[str, ...] = ("gaussian_noise", "blur", "jpeg", "misalignment")
MAX_SEVERITY = 5


@dataclass(frozen=True)
class Attack:
    """A named threat model: norm, budget and iterations (1 = FGSM, more = PGD).

    ``target`` (a class index) makes it targeted: it pushes every photo towards the model answering
    that class, instead of away from the true label.
    """

    norm: str = "infinity"
    epsilon: float = DEFAULT_BUDGETS["infinity"]
    iterations: int = 1
    target: int | None = None

    @property
    def label(self) -> str:
        name = "FGSM" if self.iterations == 1 else f"PGD-{self.iterations}"
        aim = "" if self.target is None else f" targeted at class {self.target}"
        return f"{name} {norm_symbol(self.norm)} eps {budget_label(self.norm, self.epsilon)}{aim}"


def norm_symbol(norm: str) -> str:
    return {"infinity": "L∞", "l2": "L2", "l1": "L1"}[norm]


def to_display(norm: str, epsilon: float) -> float:
    """A budget in the units people read it in: L∞ in 1/255 brightness steps, L2 and L1 as they are."""
    return float(epsilon) * DISPLAY_SCALE[norm]


def from_display(norm: str, value: float) -> float:
    """The inverse of :func:`to_display`: a budget read in people's units, back in model units."""
    return float(value) / DISPLAY_SCALE[norm]


def _plain_number(value: float) -> str:
    """Three significant digits, never an exponent ("1620", not "1.62e+03")."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def budget_label(norm: str, epsilon: float) -> str:
    """The one way a budget or a measured size is written: L∞ in brightness steps out of 255
    ("8/255", "7.94/255"), L2 and L1 as plain numbers ("0.5", "1620")."""
    text = _plain_number(to_display(norm, epsilon))
    return f"{text}/255" if norm == "infinity" else text


def budget_slug(norm: str, epsilon: float) -> str:
    """A budget in a file or folder name: ``linf-8of255``, ``l2-0.5``."""
    return f"{NORM_SLUGS[norm]}-{budget_label(norm, epsilon).replace('/', 'of')}"


def perturbation_norm(delta: np.ndarray, norm: str) -> np.ndarray:
    """Per-example norm of a batch of perturbations (N, ...) -> (N,)."""
    flat = np.abs(np.asarray(delta, dtype=np.float64).reshape(len(delta), -1))
    if norm == "infinity":
        return flat.max(axis=1)
    if norm == "l2":
        return np.sqrt((flat**2).sum(axis=1))
    if norm == "l1":
        return flat.sum(axis=1)
    raise ValueError(f"Unknown norm {norm!r}; expected one of {NORMS}.")


def _project(delta: tf.Tensor, radius: tf.Tensor, norm: str) -> tf.Tensor:
    return nsl.lib.project_to_ball(delta, radius, nsl.configs.NormType(norm))


def _loss(model: tf.keras.Model, images: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Summed cross-entropy: per-example gradients do not shrink with the batch size."""
    probabilities = model(images, training=False)
    return tf.reduce_sum(tf.keras.losses.sparse_categorical_crossentropy(labels, probabilities))


def _run_perturb(model, images, labels, step_size, epsilon, norm: str, iterations: int, random_init: bool, targeted: bool = False):
    config = nsl.configs.AdvNeighborConfig(
        adv_step_size=step_size, adv_grad_norm=norm, clip_value_min=0.0, clip_value_max=1.0
    )
    current = images
    if random_init:
        start = nsl.lib.random_in_norm_ball(images, epsilon, nsl.configs.NormType(norm))
        current = tf.clip_by_value(images + _project(start, epsilon, norm), 0.0, 1.0)
    for _ in range(iterations):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(current)
            loss = _loss(model, current, labels)
            if targeted:  # ``labels`` are the targets: NSL raises the loss, so raise -CE(target)
                loss = -loss
        stepped, _ = nsl.lib.gen_adv_neighbor(current, loss, config, gradient_tape=tape)
        current = tf.clip_by_value(images + _project(stepped - images, epsilon, norm), 0.0, 1.0)
    return current


# One trace per (model, norm, iterations, random start, targeted, batch size): NSL's random start needs a
# static batch dimension, so shapes must not be relaxed to None.
_perturb_graph = traced(_run_perturb)

# Eager gradient tapes in several threads at once corrupt the heap in TensorFlow 2.21 (the process
# dies with "free(): invalid next size" or "corrupted double-linked list"; a plain Keras model and
# six threads are enough). So one eager attack runs at a time, and a call that finds the lane taken
# uses the traced graph instead of queueing: a crowd of pages opening together pays one trace, not a
# queue of eager attacks. Traced graphs need no lock and run beside the eager one.
_EAGER_LANE = threading.Lock()


def perturb(
    images: np.ndarray,
    labels: np.ndarray,
    model: tf.keras.Model,
    step_size: float,
    norm: str = "infinity",
    iterations: int = 1,
    epsilon: float | None = None,
    random_init: bool = False,
    batch_size: int = 256,
    targets: int | np.ndarray | None = None,
    eager: bool = False,
) -> np.ndarray:
    """Adversarial versions of ``images`` that raise ``model``'s loss on the true ``labels``.

    ``iterations == 1`` is FGSM (one step of ``step_size``); more is PGD, each step of
    ``step_size`` projected back into the ``epsilon`` ball (default: ``step_size``). For L1 the
    steps are sparse (:mod:`core.sparse_l1`) and ``random_init`` is ignored.
    ``targets`` (one class index for all images, or one per image) makes the attack targeted:
    each step lowers the loss of the target class instead, pulling the model towards answering it.
    ``eager`` runs the steps op by op instead of through the traced graph: on one photo that is
    tens of milliseconds a step against one to two seconds to trace a graph not traced yet, which
    is what a page opening before its graphs are traced wants (``dashboard.resources``). One eager
    attack runs at a time (see ``_EAGER_LANE``); a call that meets another uses the graph.
    """
    if norm not in NORMS:
        raise ValueError(f"Unknown norm {norm!r}; expected one of {NORMS}.")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}.")
    if step_size < 0 or (epsilon is not None and epsilon < 0):
        raise ValueError("step_size and epsilon must be >= 0.")
    images = np.asarray(images, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    targeted = targets is not None
    if targeted:
        labels = _target_array(targets, len(images), int(model.output_shape[-1]))
    if step_size == 0 or epsilon == 0 or len(images) == 0:
        return images.copy()
    if eager and _EAGER_LANE.acquire(blocking=False):
        try:
            return _perturb_chunks(images, labels, model, step_size, norm, iterations, epsilon, random_init, batch_size, targeted, eager=True)
        finally:
            _EAGER_LANE.release()
    return _perturb_chunks(images, labels, model, step_size, norm, iterations, epsilon, random_init, batch_size, targeted, eager=False)


def _perturb_chunks(images, labels, model, step_size, norm, iterations, epsilon, random_init, batch_size, targeted, eager: bool) -> np.ndarray:
    radius = tf.constant(step_size if epsilon is None else epsilon, tf.float32)
    step = tf.constant(step_size, tf.float32)
    if norm == "l1":
        return np.concatenate(
            [
                sparse_l1_attack(
                    model, images[start : start + batch_size], labels[start : start + batch_size], step, radius, iterations,
                    targeted, eager,
                ).numpy()
                for start in range(0, len(images), batch_size)
            ]
        )
    run = _run_perturb if eager else _perturb_graph
    chunks = [
        run(
            model,
            tf.constant(images[start : start + batch_size]),
            tf.constant(labels[start : start + batch_size]),
            step,
            radius,
            norm,
            int(iterations),
            bool(random_init),
            targeted,
        ).numpy()
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(chunks)


def _target_array(targets: int | np.ndarray, count: int, classes: int) -> np.ndarray:
    """One target class per image, checked against the model's classes."""
    array = np.asarray(targets)
    if array.ndim > 1 or (array.ndim == 1 and len(array) != count) or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"targets must be one class index or one per image ({count}), got {targets!r}.")
    if array.size and (array.min() < 0 or array.max() >= classes):
        raise ValueError(f"Target classes must be between 0 and {classes - 1}, got {targets!r}.")
    return np.broadcast_to(array.astype(np.int64), (count,)).copy()


def attack(
    images: np.ndarray, labels: np.ndarray, model: tf.keras.Model, threat: Attack, targets: int | np.ndarray | None = None, eager: bool = False
) -> np.ndarray:
    """Run a threat model: FGSM for 1 iteration; PGD with step 2.5*eps/n and a random start.

    Targeted when ``threat.target`` is set, or per image with ``targets`` (not both). ``eager``: as in :func:`perturb`.
    """
    if targets is not None and threat.target is not None:
        raise ValueError("Give the target either in the Attack or as targets, not both.")
    targets = threat.target if targets is None else targets
    if threat.iterations == 1:
        return perturb(images, labels, model, threat.epsilon, threat.norm, targets=targets, eager=eager)
    return perturb(
        images,
        labels,
        model,
        step_size=2.5 * threat.epsilon / threat.iterations,
        norm=threat.norm,
        iterations=threat.iterations,
        epsilon=threat.epsilon,
        random_init=True,
        targets=targets,
        eager=eager,
    )


# --- natural corruptions -------------------------------------------------------------------------
# Severity 0 is the clean image; 1..5 grow as in ImageNet-C. Parameters are in units of the image
# (fractions of its width), so a severity means the same thing at any model size.
_NOISE_SIGMA = (0.02, 0.04, 0.07, 0.10, 0.15)
_BLUR_SIGMA = (0.008, 0.012, 0.018, 0.025, 0.035)  # fraction of width
_JPEG_QUALITY = (80, 50, 30, 15, 8)
_SHIFT = (0.02, 0.04, 0.07, 0.10, 0.14)  # fraction of width
_ROTATION_DEGREES = (3, 6, 10, 15, 20)


def corrupt(images: np.ndarray, kind: str, severity: int, seed: int = 0) -> np.ndarray:
    """A natural corruption of ``images`` (N, H, W, 3) in [0, 1] at ``severity`` 0..5."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"Unknown corruption {kind!r}; expected one of {CORRUPTIONS}.")
    if not 0 <= severity <= MAX_SEVERITY:
        raise ValueError(f"severity must be in 0..{MAX_SEVERITY}, got {severity}.")
    images = np.asarray(images, dtype=np.float32)
    if severity == 0:
        return images.copy()
    level = severity - 1
    rng = np.random.default_rng(seed)
    if kind == "gaussian_noise":
        noisy = images + rng.normal(0.0, _NOISE_SIGMA[level], images.shape).astype(np.float32)
    elif kind == "blur":
        noisy = _gaussian_blur(images, _BLUR_SIGMA[level] * images.shape[2])
    elif kind == "jpeg":
        noisy = np.stack([tf.image.adjust_jpeg_quality(image, _JPEG_QUALITY[level]).numpy() for image in images])
    else:
        noisy = _misalign(images, _SHIFT[level], _ROTATION_DEGREES[level], rng)
    return np.clip(noisy, 0.0, 1.0).astype(np.float32)


def _gaussian_blur(images: np.ndarray, sigma_pixels: float) -> np.ndarray:
    radius = max(1, int(np.ceil(3 * sigma_pixels)))
    offsets = np.arange(-radius, radius + 1, dtype=np.float32)
    kernel_1d = np.exp(-0.5 * (offsets / max(sigma_pixels, 1e-3)) ** 2)
    kernel_1d /= kernel_1d.sum()
    kernel = np.outer(kernel_1d, kernel_1d)[:, :, None, None] * np.ones((1, 1, 3, 1), np.float32)
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, strides=[1, 1, 1, 1], padding="VALID").numpy()


def _misalign(images: np.ndarray, shift: float, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Shift by ``shift`` of the width and rotate by ``degrees``, each with a random sign."""
    count, height, width = images.shape[:3]
    angle = np.deg2rad(degrees) * rng.choice([-1.0, 1.0], count)
    dx, dy = (shift * width * rng.choice([-1.0, 1.0], (2, count)))
    cos, sin = np.cos(angle), np.sin(angle)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    # Output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2): rotation about the centre, then shift.
    transforms = np.stack(
        [cos, -sin, cx - cos * cx + sin * cy - dx, sin, cos, cy - sin * cx - cos * cy - dy, np.zeros(count), np.zeros(count)],
        axis=1,
    ).astype(np.float32)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=[height, width], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT",
    ).numpy()
