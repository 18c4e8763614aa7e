"""Expectations on a batch's frame embeddings, judged from a per-video summary.

The shard holds (frames x D) float matrices; GE needs a table, so `summarize_embeddings` reduces each
video to one row (frame count, dimension, L2-norm range) in one pass over the shard.

Critical: the encoder's dimension, at least one frame, one row per video. Finiteness is not checked
here: `write_shard` refuses NaN and inf before quantizing, and dequantized uint8 codes are finite by
construction, so such an expectation could never fail.
Warning: frame count against the probed duration (a header that lies about duration is common and
the sampler is right to trust the packets), and norms outside the range pooled EfficientNet-Lite0
features normally take (a black or blown-out clip, or a changed encoder or normalisation).

The norm range defaults (5-60) are a prior from the encoder's architecture (ReLU6 features averaged
over 7x7), not a measurement on this catalog; pass the range measured on the reference set once one
exists.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from data_checks.gx_runner import param, run_suite
from data_checks.outcome import CheckOutcome

SUITE = "frame_embeddings"
DEFAULT_DIM = 1280
DEFAULT_NORM_RANGE = (5.0, 60.0)
SUMMARY_COLUMNS = (
    "video_id",
    "n_frames",
    "duration_s",
    "dim",
    "norm_min",
    "norm_max",
    "norm_mean",
    "ts_monotonic",
)


def as_triple(record: Any) -> tuple[str, np.ndarray, np.ndarray]:
    """``(video_id, timestamps, embeddings)`` from a tuple or from a shard reader's record object
    (anything with those three attributes, e.g. `ml.frames.embedding_store.VideoEmbeddings`)."""
    if isinstance(record, tuple):
        video_id, timestamps, embeddings = record
        return video_id, timestamps, embeddings
    return record.video_id, record.timestamps, record.embeddings


def summarize_embeddings(records: Iterable[Any], durations: Mapping[str, float | None] | None = None) -> Any:
    """One summary row per ``(video_id, timestamps, embeddings (n, D))``; ``durations`` from the probe.

    Norms are over the finite frames only, so a matrix handed over before `write_shard` refused it
    still reads. Pass dequantized embeddings: uint8 codes have meaningless norms.
    """
    import pandas as pd

    rows = []
    for record in records:
        video_id, timestamps, embeddings = as_triple(record)
        emb = np.asarray(embeddings)
        if emb.ndim == 1:
            emb = emb.reshape(1, -1) if emb.size else emb.reshape(0, 0)
        emb = emb.astype(np.float32, copy=False)
        finite_mask = np.isfinite(emb)
        finite_rows = finite_mask.all(axis=1) if emb.size else np.zeros(len(emb), dtype=bool)
        norms = np.linalg.norm(emb[finite_rows], axis=1) if finite_rows.any() else np.empty(0)
        ts = np.asarray(timestamps, dtype=np.float64).ravel()
        duration = durations.get(video_id) if durations is not None else None
        rows.append(
            {
                "video_id": video_id,
                "n_frames": int(emb.shape[0]),
                "duration_s": float(duration) if duration is not None else math.nan,
                "dim": int(emb.shape[1]) if emb.ndim == 2 else 0,
                "norm_min": float(norms.min()) if norms.size else math.nan,
                "norm_max": float(norms.max()) if norms.size else math.nan,
                "norm_mean": float(norms.mean()) if norms.size else math.nan,
                "ts_monotonic": bool(ts.size == 0 or (np.all(np.isfinite(ts)) and np.all(np.diff(ts) >= 0))),
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _expectations(with_expected_rows: bool = False) -> list[Any]:
    import great_expectations.expectations as gxe

    crit, warn = "critical", "warning"
    counted = (
        [
            gxe.ExpectTableRowCountToEqual(
                value=param("expected_rows"),
                severity=crit,
                meta={"why": "every probed member is in the shard or has a frames failure; a gap is a video dropped"},
            )
        ]
        if with_expected_rows
        else []
    )
    return [
        *counted,
        gxe.ExpectColumnValuesToNotBeNull(column="video_id", severity=crit, meta={"why": "the key"}),
        gxe.ExpectColumnValuesToBeUnique(column="video_id", severity=crit, meta={"why": "one matrix per video"}),
        gxe.ExpectColumnValuesToBeInSet(
            column="dim", value_set=param("dims"), severity=crit, meta={"why": "the models expect the encoder's D"}
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="n_frames", min_value=1, severity=crit, meta={"why": "a video without frames has no visual score"}
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="ts_monotonic", value_set=[True], severity=warn, meta={"why": "timestamps must not go backwards"}
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="n_frames_max",
            column_B="n_frames",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
            severity=warn,
            meta={"why": "more frames than duration x fps (+1): the sampler or the duration is wrong"},
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="n_frames",
            column_B="n_frames_min",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
            severity=warn,
            meta={"why": "fewer frames than duration x fps (-1): decoding stopped early (damaged tail?)"},
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="norm_min",
            min_value=param("norm_lo"),
            severity=warn,
            meta={"why": "near-zero features: black or blank frames, or the wrong normalisation"},
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="norm_max",
            max_value=param("norm_hi"),
            severity=warn,
            meta={"why": "unusually large features: wrong input scaling or a different encoder"},
        ),
    ]


def validate_frame_embeddings(
    df: Any,
    *,
    dim: int = DEFAULT_DIM,
    fps: float = 1.0,
    max_frames: int = 300,
    norm_range: tuple[float, float] = DEFAULT_NORM_RANGE,
    expected_rows: int | None = None,
) -> CheckOutcome:
    """Validate a `summarize_embeddings` frame against the encoder's ``dim`` and the sampler's settings.

    Frame count bounds, where the duration is known: ``min(cap, floor(d*fps)) - 1 <= n <=
    min(cap, ceil(d*fps) + 1)``; the slack of one covers a frame at t=0 and rounding at the end.
    ``expected_rows`` (probed members minus frames failures) proves no video was dropped silently.
    """
    frame = df.copy()
    duration = frame["duration_s"].astype("float64")
    expected = duration * fps
    frame["n_frames"] = frame["n_frames"].astype("float64")
    frame["n_frames_max"] = np.minimum(float(max_frames), np.ceil(expected) + 1)
    frame["n_frames_min"] = np.minimum(float(max_frames), np.floor(expected)) - 1
    return run_suite(
        SUITE,
        frame,
        lambda: _expectations(expected_rows is not None),
        cache_key=expected_rows is not None,
        parameters={
            "dims": [int(dim)],
            "norm_lo": float(norm_range[0]),
            "norm_hi": float(norm_range[1]),
            "expected_rows": expected_rows,
        },
        context={
            "dim": dim,
            "fps": fps,
            "max_frames": max_frames,
            "norm_range": list(norm_range),
            "expected_rows": expected_rows,
        },
    )
