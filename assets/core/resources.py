"""Resources shared by every asset: settings, catalog and working set of one vidcat installation."""

from __future__ import annotations

import functools
from pathlib import Path

import dagster as dg

from ml.catalog.store import Catalog, open_catalog
from ml.config import Settings, load_settings
from ml.taxonomy import WorkingSet, working_set_for


@functools.lru_cache(maxsize=8)
def _catalog_for(path: str) -> Catalog:
    # Schema migration runs once per process and catalog file, not on every asset.
    return open_catalog(Path(path))


class VidcatResource(dg.ConfigurableResource):
    """Where the data root is and what the pipeline's knobs are; empty fields mean vidcat.toml/env."""

    config_path: str | None = None
    data_root: str | None = None
    batch_size: int | None = None

    def settings(self) -> Settings:
        return load_settings(self.config_path, data_root=self.data_root, batch_size=self.batch_size).ensure_dirs()

    def catalog(self) -> Catalog:
        return _catalog_for(str(self.settings().catalog_path))

    def working_set(self) -> WorkingSet:
        return working_set_for(self.settings())

    def engine(self):  # -> ml.engines.local.Engine
        """Where the heavy per-batch stages run: in process, or on Ray when ray_address is set."""
        from ml.engines.local import engine_from_settings

        return engine_from_settings(self.settings())
