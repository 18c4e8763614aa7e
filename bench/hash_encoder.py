"""A deterministic bag-of-words text encoder: each word a fixed random vector, a text their normalised sum.

Stands in for e5 where what is measured or tested is a head on top of embeddings (its fit, its
selection, its persistence), not the encoder: no model to load, the same vectors on every machine, and
texts on one topic close together. Subclasses set ``name`` and ``dim``.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np


class HashEncoder:
    name = "hash"
    dim = 32

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", str(t).lower()):
                seed = int(hashlib.md5(w.encode()).hexdigest()[:8], 16)
                out[i] += np.random.default_rng(seed).normal(size=self.dim)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
