"""Training batches: the augmented, shuffled photos both models learn from, one replica's share each.

Why its own module: what a model sees in training (the leaf-safe augmentations, the optional noise
for randomized smoothing, the static batch NSL's random PGD start needs under ``tf.distribute``) is
one decision, apart from how the models are built, fitted and saved (:mod:`core.train`).
"""

from __future__ import annotations

from core import data
from core.compat import tf
from core.models import INPUT_NAME, LABEL_NAME


def augment(images: tf.Tensor, labels: tf.Tensor, noise_sigma: float = 0.0) -> tuple[tf.Tensor, tf.Tensor]:
    """Leaves have no up or left: flips and quarter turns, plus mild lighting changes. With ``noise_sigma``, Gaussian
    noise after the clip, as ``core.certify`` adds it: a smoothed model is only as good as its model on noisy photos."""
    images = tf.image.random_flip_left_right(images)
    images = tf.image.random_flip_up_down(images)
    images = tf.image.rot90(images, tf.random.uniform([], 0, 4, tf.int32))
    images = tf.image.random_brightness(images, 0.1)
    images = tf.clip_by_value(tf.image.random_contrast(images, 0.9, 1.1), 0.0, 1.0)
    return (images + tf.random.normal(tf.shape(images), stddev=noise_sigma) if noise_sigma > 0 else images), labels


def steps_per_epoch(train_size: int, batch_size: int) -> int:
    """Whole global batches in one pass over the training split (the remainder is dropped)."""
    return train_size // min(batch_size, train_size)


def training_dataset(
    split: data.Split, batch_size: int, seed: int, as_dict: bool, strategy: tf.distribute.Strategy | None = None, noise_sigma: float = 0.0
) -> "tf.data.Dataset | tf.distribute.DistributedDataset":
    """Shuffled, augmented batches; dicts ``{"image", "label"}`` for NSL's wrapper.

    ``batch_size`` is the global batch. Under a strategy every replica gets its own batches of
    ``batch_size / replicas`` examples from a dataset built per worker: letting Keras split global
    batches instead loses the static batch dimension under MultiWorkerMirroredStrategy, and NSL's
    random PGD start cannot handle an unknown one. Every worker shuffles with the same seed, keeps
    the same whole number of global batches and reads only its own share of them, so all workers
    run the same number of steps. With one device this is the plain ``tf.data.Dataset``. It repeats:
    train ``len(split) // batch_size`` steps an epoch (:func:`steps_per_epoch`).
    """
    strategy = strategy or tf.distribute.get_strategy()
    steps = steps_per_epoch(len(split), batch_size)
    batch_size = min(batch_size, len(split))

    def per_worker(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica_batch = context.get_per_replica_batch_size(batch_size)
        dataset = tf.data.Dataset.from_tensor_slices((split.images, split.labels))
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True).take(steps * batch_size)
        if context.num_input_pipelines > 1:
            dataset = dataset.shard(context.num_input_pipelines, context.input_pipeline_id)
        # A static batch size: NSL's random PGD start cannot handle an unknown batch dimension.
        dataset = dataset.map(lambda x, y: augment(x, y, noise_sigma), num_parallel_calls=tf.data.AUTOTUNE).batch(per_replica_batch, drop_remainder=True)
        dataset = dataset.repeat()  # one pass is exactly one epoch of ``steps``; fit needs steps for distributed data
        if as_dict:
            dataset = dataset.map(lambda images, labels: {INPUT_NAME: images, LABEL_NAME: labels})
        return dataset.prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(per_worker)  # the default strategy: per_worker's dataset
