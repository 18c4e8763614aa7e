"""One video through the scene stage (`segment_video`, what the batch and `classify --segments` run):
a category only under a certified scene threshold, and otherwise the reason a scene has none."""

from __future__ import annotations

import numpy as np

from ml.frames.embedding_store import iter_videos
from ml.segments.certification import NO_THRESHOLD, SceneThresholds
from ml.segments.stage import OUT_OF_DISTRIBUTION, segment_video
from ml.thresholds import Threshold
from tests.ml.segments.test_score import student  # noqa: F401 - the module's tiny trained student

OFF = Threshold(None, None, None, 0, 0, 3, None, False, "too few verified scenes", 11)


def _joined(syn):
    a, b = [v for v in iter_videos(syn.shards) if v.n_frames >= 12][:2]
    ts = np.arange(a.n_frames + b.n_frames, dtype=np.float32)
    return ts, np.vstack([a.embeddings * 0.0 + a.embeddings.mean(0), b.embeddings * 0.0 + b.embeddings.mean(0) * -1])


def test_categories_only_under_certified_thresholds_and_reasons_otherwise(student):  # noqa: F811
    predictor, syn = student
    ts, emb = _joined(syn)
    cats = list(predictor.categories)
    on = Threshold(0.0, 1.0, 1.0, 20, 20, 20, 0.9, True, "certified")
    certified = SceneThresholds("s1", predictor.version, cats, [on] + [OFF] * (len(cats) - 1))
    seg = segment_video(predictor, ts, emb, float(len(ts)), None, certified)
    assert seg.scenes[0].start_s == 0.0 and seg.scenes[-1].end_s == float(len(ts))
    assert all([c for c, _ in g] == [cats[0]] for g in seg.categories)
    assert seg.abstained == [None] * len(seg.scenes) and seg.breaks == []  # the same category: no break
    dicts = seg.as_dicts()
    assert dicts[0]["categories"][0]["id"] == cats[0] and "top" in dicts[0]

    # No certified threshold: the scenes keep their scores and say why they have no category.
    none = segment_video(predictor, ts, emb, float(len(ts)), None, None)
    assert none.categories == [[]] * len(none.scenes) and set(none.abstained) == {NO_THRESHOLD}
    assert np.isfinite(none.scores).all()
    # The student abstains on the video: so do its scenes.
    ood = segment_video(predictor, ts, emb, float(len(ts)), None, certified, out_of_distribution=True)
    assert set(ood.abstained) == {OUT_OF_DISTRIBUTION} and not any(ood.categories)
