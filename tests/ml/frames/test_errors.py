"""One error tree for the probe, the sampler and their pool: a fault has one class, whatever met it."""

from __future__ import annotations

import pytest

from ml.frames import errors
from ml.frames.probe import probe, probe_job
from ml.frames.sampler import SampleOptions, sample_frames


def test_probe_and_sampler_raise_the_same_class_for_the_same_fault(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(errors.EmptyFile):
        probe(empty)
    with pytest.raises(errors.EmptyFile):
        sample_frames(empty)
    with pytest.raises(errors.MissingFile):
        probe(tmp_path / "gone.mp4")
    with pytest.raises(errors.MissingFile):
        sample_frames(tmp_path / "gone.mp4")


def test_every_class_crosses_a_pipe_by_its_name():
    for name, cls in errors.ERROR_CLASSES.items():
        assert cls.__name__ == name and issubclass(cls, errors.VideoError)
        assert type(errors.error_from_name(name, "m")) is cls
    # Something no stage names (a bug, an unexpected library error) is a decode failure of the file.
    assert type(errors.error_from_name("OSError", "m")) is errors.DecodeError


def test_a_probe_failure_from_the_pool_names_the_file_and_the_class(tmp_path):
    empty = tmp_path / "clip.mp4"
    empty.write_bytes(b"")
    with pytest.raises(errors.EmptyFile) as caught:
        probe_job(str(empty), SampleOptions())
    assert str(caught.value).startswith("clip.mp4: EmptyFile: ")
