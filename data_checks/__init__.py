"""Great Expectations suites and Evidently drift reports as pure functions (no dagster import)."""
