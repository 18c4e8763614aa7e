"""inspect_video: what the encoder's own ImageNet head sees in real clips, as a person would agree."""

from __future__ import annotations

import pytest

from ml.frames.inspect_video import inspect_video
from ml.frames.sampler import NoVideoStream
from tests.conftest import REAL_CLIPS, needs_real_clips
from tests.videogen import shared_encoder, write_audio_only, write_video

DOGS = range(151, 269)  # ImageNet-1k ids 151..268 are dog breeds


def test_inspect_a_generated_video(settings, tmp_path):
    path = write_video(tmp_path / "a.mp4", seconds=3)
    facts = inspect_video(path, settings, encoder=shared_encoder(), isolated=False)
    assert facts["timestamps"] == [0.0, 1.0, 2.0] and facts["embedding_shape"] == [3, 1280]
    assert len(facts["top_classes"]) == 5 and len(facts["frame_top1"]) == 3
    probs = [c["probability"] for c in facts["top_classes"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0001


def test_inspect_raises_the_sampling_error(settings, tmp_path):
    with pytest.raises(NoVideoStream):
        inspect_video(write_audio_only(tmp_path / "a.m4a"), settings, encoder=shared_encoder())


@pytest.mark.slow
@needs_real_clips
def test_real_clips_get_plausible_imagenet_classes(settings):
    def top(name: str) -> list[dict]:
        return inspect_video(REAL_CLIPS / name, settings, encoder=shared_encoder(), isolated=False)["top_classes"]

    dog = top("Video-LLaMA__skateboarding_dog.mp4")
    assert sum(c["id"] in DOGS for c in dog) >= 3, dog
    assert top("Video-LLaVA__sample_demo_22.mp4")[0]["name"] == "drum"  # a man playing a drum kit
    assert top("Video-LLaMA__birthday.mp4")[0]["name"] == "candle"
    assert {"assault rifle", "military uniform", "rifle"} & {c["name"] for c in top("PLLaVA__1917.mp4")}
    assert "grocery store" in [c["name"] for c in top("sample-videos__store-aisle-detection.gif")[:2]]


@pytest.mark.slow
@needs_real_clips
def test_inspect_isolated_in_a_worker(settings):
    facts = inspect_video(REAL_CLIPS / "moviepy__no_duration.webm", settings, encoder=shared_encoder())
    assert facts["n_frames"] == 5 and facts["sampling"]["codec"] == "vp9"
