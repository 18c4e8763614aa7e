"""A Ray driver in its own process for the two-node tests: `python -m tests.ray_driver ADDRESS JOB.json`.

A fresh process imports Ray with the cluster's token and settings, whatever earlier tests did with Ray
in the test process. It embeds one batch with the Ray engine and prints the outcome as JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    address, job_path = sys.argv[1], sys.argv[2]
    job = json.loads(Path(job_path).read_text())
    from ml.config import load_settings
    from ml.engines.ray_engine import RayEngine

    settings = load_settings(data_root=job["data_root"], decode_timeout_s=30)
    sample_fn = None
    if job.get("slow"):
        from tests.faults import slow_sample

        sample_fn = slow_sample
    with RayEngine(
        address,
        encoder_resources={"vidcat_encoder": 1},
        spread_decodes=True,
        decode_slots=job.get("slots", 3),
        sample_fn=sample_fn,
        log_to_driver=False,
    ) as engine:
        print("ready", flush=True)
        result = engine.embed_batch(job["batch_id"], [tuple(v) for v in job["videos"]], settings)
    print(
        json.dumps(
            {
                "shard": str(result.shard),
                "embedded": result.embedded,
                "nodes": result.nodes,
                "failures": [[f.video_id, f.error_class, f.message] for f in result.failures],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
