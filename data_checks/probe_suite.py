"""Expectations on one batch's `video_probe` rows.

Unreadable files never reach this table: the probe records them in `failures`. What is left is
judged in two tiers.

Critical (blocking the batch's downstream stages): the rows are the batch's, each video once, every
member accounted for (probed or failed: nothing dropped silently), and the facts frame sampling
needs exist (width, height, at least one packet, a non-empty file). A failure here means the probe or
the write is broken, and embedding the batch would build on it.
Warning (the batch goes on): plausibility of duration, frame rate, resolution, codec and bit rate.
One odd upload (a 30-hour stream, a 1000 fps screen capture, a codec we have not listed) is a fact
about that video, not a reason to hold back the thousands of others in its batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from data_checks.gx_runner import param, run_suite
from data_checks.outcome import CheckOutcome

SUITE = "probe"
MAX_DURATION_S = 24 * 3600.0
FPS_RANGE = (1.0, 240.0)
MAX_SIDE = 8192
# FFmpeg decoder names as the probe records them (PyAV's codec_context.name): AV1 shows up as the
# decoder that read it (libdav1d), VP8/VP9 as libvpx* when that decoder was picked.
KNOWN_VIDEO_CODECS = frozenset(
    {
        "h264", "hevc", "vp8", "vp9", "libvpx", "libvpx-vp9", "av1", "libdav1d", "libaom-av1", "mpeg4",
        "msmpeg4v2", "msmpeg4v3", "mpeg1video", "mpeg2video", "h263", "flv1", "theora", "wmv1", "wmv2", "wmv3",
        "vc1", "mjpeg", "gif", "apng", "png", "prores", "dnxhd", "rawvideo", "ffv1", "huffyuv", "qtrle", "cinepak",
    }
)  # fmt: skip


def _expectations(with_batch_ids: bool, with_expected_rows: bool) -> list[Any]:
    import great_expectations.expectations as gxe

    crit, warn = "critical", "warning"
    out: list[Any] = [
        gxe.ExpectColumnValuesToNotBeNull(column="video_id", severity=crit, meta={"why": "the key"}),
        gxe.ExpectColumnValuesToBeUnique(column="video_id", severity=crit, meta={"why": "one probe row per video"}),
    ]
    if with_batch_ids:
        out.append(
            gxe.ExpectColumnValuesToBeInSet(
                column="batch_id", value_set=param("batch_ids"), severity=crit, meta={"why": "rows of another batch"}
            )
        )
    if with_expected_rows:
        out.append(
            gxe.ExpectTableRowCountToEqual(
                value=param("expected_rows"),
                severity=crit,
                meta={"why": "every batch member is probed or in failures; a gap is a video dropped silently"},
            )
        )
    for column, why in (
        ("width", "frames are resized from it"),
        ("height", "frames are resized from it"),
        ("n_frames", "the probe saw no video packet"),
        ("size_bytes", "empty files belong in failures"),
    ):
        out.append(gxe.ExpectColumnValuesToNotBeNull(column=column, severity=crit, meta={"why": why}))
        out.append(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=1, severity=crit, meta={"why": why}))
    out += [
        gxe.ExpectColumnValuesToBeBetween(
            column="duration_s",
            min_value=0,
            max_value=param("max_duration_s"),
            strict_min=True,
            severity=warn,
            meta={"why": "a container header that lies; null (unknown) is allowed: live-muxed WebM, GIF"},
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="fps",
            min_value=param("fps_min"),
            max_value=param("fps_max"),
            severity=warn,
            meta={"why": "implausible rate; null is allowed (no rate in the container)"},
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="width", max_value=param("max_side"), severity=warn, meta={"why": "beyond 8K on one side"}
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="height", max_value=param("max_side"), severity=warn, meta={"why": "beyond 8K on one side"}
        ),
        gxe.ExpectColumnValuesToBeInSet(
            column="video_codec",
            value_set=param("codecs"),
            severity=warn,
            meta={"why": "decodes (the probe proved it) but is not a codec we have seen; add it if legitimate"},
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="bit_rate", min_value=1, severity=warn, meta={"why": "null allowed; zero or negative is a bug"}
        ),
    ]
    return out


def validate_probe(
    df: Any,
    *,
    batch_ids: Iterable[str] | None = None,
    expected_rows: int | None = None,
    max_duration_s: float = MAX_DURATION_S,
    fps_range: tuple[float, float] = FPS_RANGE,
    max_side: int = MAX_SIDE,
    codecs: Iterable[str] = KNOWN_VIDEO_CODECS,
) -> CheckOutcome:
    """Validate `video_probe` rows of one batch (or a few).

    ``expected_rows`` is the number of batch members minus the batch's probe failures; pass it to
    prove that nothing was dropped. ``batch_ids`` restricts rows to the batches being checked.
    """
    ids = tuple(sorted(batch_ids)) if batch_ids is not None else None
    codec_list = tuple(sorted(codecs))
    frame = df.copy()
    for column in ("duration_s", "fps", "bit_rate", "width", "height", "n_frames", "size_bytes"):
        frame[column] = frame[column].astype("float64")  # nullable ints (pd.NA) would trip GE's comparisons
    with_ids, with_rows = ids is not None, expected_rows is not None
    return run_suite(
        SUITE,
        frame,
        lambda: _expectations(with_ids, with_rows),
        cache_key=(with_ids, with_rows),
        parameters={
            "batch_ids": list(ids or ()),
            "expected_rows": expected_rows,
            "max_duration_s": max_duration_s,
            "fps_min": fps_range[0],
            "fps_max": fps_range[1],
            "max_side": max_side,
            "codecs": list(codec_list),
        },
        context={
            "batch_ids": list(ids) if ids is not None else None,
            "expected_rows": expected_rows,
            "max_duration_s": max_duration_s,
            "fps_range": list(fps_range),
            "max_side": max_side,
        },
    )
