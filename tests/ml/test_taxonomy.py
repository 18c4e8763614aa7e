"""IAB Content Taxonomy 3.1: both sources, the working-set rule and its documented properties."""

from __future__ import annotations

import pytest

from ml.taxonomy import EXPECTED_NODES, TaxonomyError, load_rule, load_taxonomy, working_set
from tests.conftest import SHARED_DATA, needs_shared_data

TSV = SHARED_DATA / "iab_taxonomy" / "Content Taxonomy 3.1.tsv"


def test_packaged_taxonomy_has_704_string_ids():
    t = load_taxonomy()
    assert len(t) == EXPECTED_NODES == 704
    assert all(isinstance(k, str) for k in t.nodes)
    assert sum(not k.isdigit() for k in t.nodes) == 31  # e.g. "v9i3On", "JLBCU7"
    assert t["483"].name == "Sports" and t["533"].path == ("Sports", "Soccer")
    assert t.ancestors("497") == ["496", "483"]  # Horse Racing < Equine Sports < Sports


@needs_shared_data
def test_official_tsv_reads_to_the_same_tree():
    packaged, official = load_taxonomy(), load_taxonomy(TSV)
    assert len(official) == 704
    assert {k: (c.path, c.parent_id) for k, c in packaged.nodes.items()} == {
        k: (c.path, c.parent_id) for k, c in official.nodes.items()
    }


def test_bad_tsv_fails_with_a_message(tmp_path):
    bad = tmp_path / "t.tsv"
    bad.write_text("not\tthe\tiab\tfile\n")
    with pytest.raises(TaxonomyError, match="Unique ID"):
        load_taxonomy(bad)
    with pytest.raises(TaxonomyError, match="not found"):
        load_taxonomy(tmp_path / "missing.tsv")


def test_working_set_follows_the_rule(ws):
    rule = load_rule()
    t = ws.taxonomy
    assert 180 <= len(ws) <= 230
    assert len(set(ws.ids)) == len(ws)
    for c in ws.categories:
        anc = set(t.ancestors(c.id))
        assert c.tier in rule["tiers"]
        assert not ({c.id, *anc} & set(rule["exclude_subtrees"]))
        assert not (anc & set(rule["collapse"])), f"{c.full_name} is under a collapsed parent"
        assert c.id not in rule["exclude_ids"]
    for parent in rule["collapse"]:
        assert parent in ws, "a collapsed parent stays as a tier-1 category"
    assert ws.by_id("533").visual and ws.by_id("425").visual
    assert not ws.by_id("391").visual  # Personal Finance
    assert not ws.by_id("30").visual  # Automotive > Auto Buying and Selling (listed as not visual)
    assert "v9i3On" not in ws


def test_roll_up_to_working_set(ws):
    t = ws.taxonomy
    assert t.roll_up("497", ws.ids) == "496"  # tier 3 Horse Racing -> tier 2 Equine Sports
    assert t.roll_up("533", ws.ids) == "533"
    assert t.roll_up("v9i3On", ws.ids) is None


def test_rule_naming_unknown_ids_is_refused():
    rule = dict(load_rule())
    rule["collapse"] = [*rule["collapse"], "no-such-id"]
    with pytest.raises(TaxonomyError, match="no-such-id"):
        working_set(load_taxonomy(), rule)
