"""Dagster wiring: resources, partitions, sensors, jobs, Definitions and the `vidcat` CLI."""
