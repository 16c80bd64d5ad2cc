"""The "What am I looking at?" texts, one per panel, written for a classroom (15-year-olds to undergrads).

Kept apart from the layout code so a teacher can reword them without touching the app.
"""

PICK = """
**The models** look at a photo of one bean leaf and say which of three things it shows:
*angular leaf spot* and *bean rust* (two diseases) or a *healthy* leaf.

**Test photos** were never shown to the models while they learned, and we know their right answer,
so we can tell when a model is right. **Your own photo** has no known answer unless you give one;
without one, the attack simply tries to make each model change its mind.

The models only see a small square version of the photo (the first picture in section 3),
because small inputs keep training fast enough for a laptop.
"""

ATTACK = """
An **adversarial attack** changes the photo *a tiny bit*, in exactly the direction that confuses the
model most. The model tells us that direction itself: its **gradient** says, for every pixel, which way
to nudge it to make the model *more wrong*.

* **Budget ε** is how much the attacker may change the photo.
* **How the change is measured** (the *norm*):
  * **Every pixel a little (L∞)**: no pixel may change by more than ε. 8/255 means each pixel's
    brightness moves by at most 8 of its 255 levels — usually invisible.
  * **Overall distance (L2)**: the total change, measured like a straight-line distance. A few pixels
    may change a lot, or many a little.
  * **A few pixels a lot (L1)**: the sum of all changes; the attacker spends it on the pixels that
    matter most.
* **One big step (FGSM)** uses the whole budget at once. **Many small steps (PGD)** takes several
  smaller *steps*, re-aiming after each and staying inside the budget: slower, and a stronger attacker.

**What the attacker knows**

* *Only the baseline* — the seed project's protocol: the change is computed on the baseline and the
  same photo is shown to both models. For the NSL model that is only a **transfer attack** (the
  attacker never looked inside it), so it flatters the NSL model.
* *Only the NSL model*: the reverse.
* *Each model* (**white-box**): the honest test; each model gets a change aimed at itself.

**Camera problems** (noise, blur, JPEG compression, a slightly shifted and turned photo) are what real
cameras do. They are much *bigger* changes than an attack, but not aimed at any model.
"""

SEE = """
Left: the photo the models see. Right: the photo after the change. Middle: the change itself,
**stretched** so you can see it — red pixels got brighter, blue ones darker, white ones did not
change. The real change is tiny; the line above the pictures says how big. It can be *smaller* than
the budget ε, because pixels cannot go below black or above white.
"""

COMPARE = """
Each model's card says its answer on the changed photo, how sure it is, and whether that is right;
below it, its answer before the change. The bars show how sure it is of every class, before (grey)
and after (colour) the change.

**The baseline** was trained the ordinary way. **The NSL model** was trained with *Neural Structured
Learning* **adversarial regularization**: while it learned, it also saw changed versions of every
batch, and was penalised when its answer on the changed version was wrong. It usually pays a little
accuracy on clean photos for being much harder to fool.

A model that changes its mind under a change you cannot even see is not really looking at the
disease — that is the whole point of this demo.
"""

WHY = """
**Regions (Grad-CAM)** asks the deepest conv layer which of its maps raise the answer's score, and
paints where those maps fire: bright = the part of the photo the answer rests on. **Pixels
(SmoothGrad)** asks which single pixels would change the score most, averaged over noisy copies of
the photo so the picture is steady.

Compare *before* and *after*: when the change fools a model, does its attention jump somewhere else,
or does it look at the same spots and still read them wrong?
"""

INSIDE = """
A **convolutional layer** slides small pattern detectors ("channels") over the photo. Each heatmap
shows where one channel fires (bright = strongly). *conv1* sees edges and colours; deeper layers see
larger patterns such as spots.

The third column is **after − before**: how much the change altered that channel's activity.
All activation maps share one colour scale and all change maps share another, so you can compare
the two models directly. Often the attack's invisible noise grows into large changes deep in the
baseline, while the NSL model's maps stay calmer.

The two models were trained separately, so *channel 5* of one has nothing to do with *channel 5*
of the other; the *busiest channels* view picks each model's own most active channels.
"""

ROBUSTNESS = """
One photo can be lucky. These numbers use **all the test photos**.

**The curves** show the share of test photos each model gets right as the budget ε grows, with each
model attacked through its own gradients (white-box PGD, the strongest attack here). At budget 0 you
read the accuracy on clean photos. The dotted line is what guessing would score. A robust model's
curve falls slowly.

**Section 6** runs *your current settings* on every test photo: accuracy before and after, which class
becomes which (confusion matrices), a gallery, and a CSV file. With *the attacker knows only the
baseline* it reproduces the seed project's table — remember that this is a transfer attack for the
NSL model.
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
