"""The small copy of the Beans test split that ships with Beanguard, so the dashboard shows real
leaves on a machine with neither a Beans folder nor a network.

Why 64 px and lossless: that is what the shipped models see, and they are very sensitive to how a
photo was made — re-encoding the same 64 px photos as JPEG (quality 92) changed the baseline's
answer on 28 of the 128 photos, while this copy (the antialiased 500 → 64 px resize every load
does, rounded to 8 bits) gives the same answer on all 128 photos for both shipped models. 1.5 MB.

Licence and provenance: ``core/assets/BEANS.md``. Regenerate from a full Beans folder with::

    python -m core.embedded --data-dir ../shared/beans
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from core import data

ASSET = Path(__file__).resolve().parent / "assets" / "beans_test_64.npz"
SIZE = 64
SOURCE = "the 128 Beans test photos shipped with Beanguard (64 px)"


def available() -> bool:
    return ASSET.is_file()


def load_test_split(image_size: int = SIZE) -> data.Split:
    """The shipped test photos at ``image_size`` (resized, antialiased, when it is not 64 px)."""
    if not available():
        raise data.DataError(f"The shipped copy of the Beans test photos is missing ({ASSET}); reinstall Beanguard.")
    with np.load(ASSET) as stored:
        pixels, labels, names = stored["images"], stored["labels"], stored["filenames"]
    images = pixels.astype(np.float32) / 255.0 if image_size == SIZE else data.resize_images(pixels, image_size)
    return data.Split(images, labels.astype(np.int64), tuple(str(name) for name in names), source=SOURCE)


def test_split(image_size: int, data_dir: str | Path | None = None) -> data.Split:
    """The Beans test split from the folder or TFDS as usual; on a machine with no Beans folder set,
    no Beans in TFDS's cache and no network, the copy shipped here instead (``Split.source`` says
    which). Only the dashboard asks for this: training and evaluation need the real splits."""
    try:
        return data.load_split("test", image_size, data_dir)
    except data.OfflineError:
        if not available():
            raise
        return load_test_split(image_size)


def write(data_dir: str | Path, path: Path = ASSET) -> Path:
    """Make the copy from a full Beans folder: the test split as the loader sees it at 64 px, 8 bits."""
    test = data.load_split("test", SIZE, data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.round(test.images * 255.0).astype(np.uint8)
    np.savez_compressed(path, images=pixels, labels=test.labels.astype(np.int8), filenames=np.array(test.filenames))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.embedded", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="a full Beans folder <root>/<split>/<class>/*.jpg")
    args = parser.parse_args(argv)
    path = write(args.data_dir)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
