"""Dagster software-defined assets: thin wrappers that read inputs, call ml/ or data_checks/, write outputs."""
