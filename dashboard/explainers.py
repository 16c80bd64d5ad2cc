"""The "What am I looking at?" texts, one per panel, written for a classroom (15-year-olds to undergrads).

Kept apart from the layout code so a teacher can reword them without touching the app.
"""

PICK = """
**The models** look at a photo of one bean leaf and say which of three things it shows:
*angular leaf spot* and *bean rust* (two diseases) or a *healthy* leaf.

**Test images** were never shown to the models during training, and we know their true label,
so we can tell when a model is right. **Your own photo** has no known answer unless you tell us;
without one, the attack simply tries to make each model change its mind.

The models only see a small square version of the photo (shown under *See it*), because small
inputs keep training fast enough for a laptop.
"""

ATTACK = """
An **adversarial attack** changes the picture *a tiny bit* in exactly the direction that confuses the
model most. The model tells us that direction itself: its **gradient** says, for every pixel, which way
to nudge it to make the model *more wrong*.

* **Step size ε** is the budget: how much the attacker may change the image.
* **L∞, L2, L1** are three ways to measure "how much":
  * **L∞** (max): no pixel may change by more than ε. In 1/255 steps, 8/255 means each pixel's
    brightness moves by at most 8 of its 255 levels — usually invisible.
  * **L2** (distance): the total change, measured like a straight-line distance. A few pixels may
    change a lot, or many a little.
  * **L1** (sum): the sum of all changes. Cheapest when the change is concentrated in a few pixels.
    NSL's L1 step puts the *whole* budget on the single pixel whose gradient is largest, so an
    L1 attack moves one pixel (colour channel) per step — watch the perturbation panel.
* **FGSM** takes one big step. **PGD** takes several small steps, re-checking the gradient each
  time and staying inside the budget: slower, but a stronger attacker.

**Who attacks?**

* *The baseline* is the seed project's protocol: the attack is computed on the baseline and the same
  image is shown to both models. For the adversarial model that is only a **transfer attack**
  (the attacker never looked at its gradients), so it flatters the adversarial model.
* *The adversarial model*: the reverse — white-box for it, transfer for the baseline.
* *Each model attacks itself* (**white-box**): the honest test; each model gets its own worst case.

**Natural corruptions** (noise, blur, JPEG compression, a slightly shifted and rotated photo) are what
real cameras do. They are much *bigger* changes than an attack, but not aimed at the model.
"""

SEE = """
Left: the image the models see. Right: the image after the attack. Middle: the difference between
them, **amplified** so you can see it — red pixels got brighter, blue ones darker, white ones did not
change. The colours are stretched: the real change is tiny (the number above says how big, in the
norm you chose). The title also prints the perturbation's measured size: it can be *smaller* than ε
because pixels cannot go below black or above white.
"""

COMPARE = """
For each model: how sure it is of each class on the clean image (grey) and on the perturbed image
(colour). **✓ right** means the top guess is the true label, **✗ wrong** means it is not.

**The baseline** was trained the ordinary way. **The adversarial model** was trained with
*Neural Structured Learning* (NSL) **adversarial regularization**: during training it is shown
attacked versions of every batch too, and is penalised when its answer on the attacked version
differs from the right one. It usually pays a little clean accuracy for being much harder to fool.

A model that changes its mind under a change you cannot even see is not really looking at the
disease — that is the whole point of this demo.
"""

INSIDE = """
A **convolutional layer** slides small pattern detectors ("channels") over the image. Each heatmap
shows where one channel fires (bright = strongly). *conv1* sees edges and colours, *conv3* sees larger
patterns such as spots.

The third column is **perturbed − clean**: how much the attack changed that channel's activity.
All activation maps share one colour scale and all change maps share another, so you can compare
the two models directly. Often the attack's invisible noise grows into large changes deep in the
baseline, while the adversarial model's maps stay calmer.

The two models were trained separately, so *channel 5* of one has nothing to do with *channel 5*
of the other; the *top channels* view picks each model's own most active channels.
"""

ROBUSTNESS = """
One image can be lucky. These numbers use **the whole test split**.

**The curves** show test accuracy as the attack budget grows, with each model attacked through its
own gradients (white-box PGD, the strongest attack here). At ε = 0 you see clean accuracy. The dotted
line is what guessing would score. A robust model's curve falls slowly.

**The table** runs *your current settings* on every test image: clean accuracy, then accuracy under
your attack. With *the baseline* as attacker it reproduces the seed project's table — remember that
this is a transfer attack for the adversarial model.
"""

RETRAIN = """
Retraining starts from the shipped models and trains the adversarial model again with the teacher's
settings (the quick recipe: a couple of minutes):

* **epochs**: how many times a model sees every training image (0 baseline epochs keeps the shipped baseline);
* **multiplier**: how much the adversarial loss counts next to the normal loss (0 = no defence);
* **step, norm, PGD steps, budget ε**: the attack NSL uses *during training*.

It runs in the background; everybody connected sees the same progress bar. Each run is saved in a
folder of its own, and when it finishes every page switches to it. The shipped models never change:
the teacher can show any earlier run again, or restore the shipped ones in one click. If a run fails,
nothing is kept and the class keeps the models it had.
"""
