"""The one partitioning of vidcat: a dynamic partition per batch of videos (see ml/catalog/batching.py)."""

from __future__ import annotations

import warnings

import dagster as dg

# backfill_policy is marked beta; it is the documented way to pack batches into runs, so say it once here.
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*backfill_policy.*")
# Partitioned asset checks are a preview feature in Dagster 1.13; they are what makes a blocking check
# act per batch.
warnings.filterwarnings("ignore", category=dg.PreviewWarning, message=".*partitions_def on an AssetCheckSpec.*")

BATCHES_PARTITION_NAME = "video_batches"
video_batches = dg.DynamicPartitionsDefinition(name=BATCHES_PARTITION_NAME)

# A backfill over many batches launches runs of this many partitions each: enough to amortize a run's
# start-up (process spawn, imports, model load), few enough that the queue keeps both cores busy.
MAX_PARTITIONS_PER_RUN = 4
batch_backfill_policy = dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN)


def batch_keys(context: dg.AssetExecutionContext) -> list[str]:
    """The batches this step covers: one, or a range when a backfill packs several into a run."""
    return list(context.partition_keys) if context.has_partition_key_range else [context.partition_key]
