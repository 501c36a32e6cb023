"""Curation recipes as plug-ins: registry, derived fingerprints, the one decision table."""

import dataclasses

import pyarrow.parquet as pq
import pytest

from corpuslab.curation.decisions import Decision, DecisionWriter, repeat_counts
from corpuslab.curation.recipes import Recipe, recipes
from corpuslab.errors import ConfigError
from corpuslab.registry import config_fields


def _perturbed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if value is None:
        return 1
    if isinstance(value, tuple):
        return (*value, 0)
    raise AssertionError(f"no perturbation for {value!r}")


def _replace(config, dotted: str, value):
    head, _, rest = dotted.partition(".")
    inner = _replace(getattr(config, head), rest, value) if rest else value
    return dataclasses.replace(config, **{head: inner})


@pytest.mark.parametrize("name", recipes.names())
def test_every_field_of_every_recipe_config_changes_the_fingerprint(name):
    recipe = recipes.get(name, "recipe")()
    base = recipe.fingerprint("inputs")
    fields = config_fields(recipe.config)
    assert fields or recipe.config == recipe.Config()
    ignored = recipe.ignored_fields() if hasattr(recipe, "ignored_fields") else set()  # declared: cannot matter
    for dotted, value in fields:
        if dotted in ignored:
            continue
        changed = type(recipe)(_replace(recipe.config, dotted, _perturbed(value)))
        assert changed.fingerprint("inputs") != base, f"{name}: changing {dotted} left the fingerprint unchanged"


def test_fingerprint_covers_inputs_name_and_version():
    near = recipes.get("near", "recipe")()
    assert near.fingerprint("a") != near.fingerprint("b")

    class NearV2(type(near)):
        version = near.version + 1

    assert NearV2(near.config).fingerprint("a") != near.fingerprint("a")
    assert recipes.get("exact", "recipe")().fingerprint("a") != recipes.get("none", "recipe")().fingerprint("a")


def test_unknown_recipe_lists_known_and_duplicate_names_are_refused():
    with pytest.raises(ConfigError) as err:
        recipes.get("fuzzy", "runs[0].recipe")
    assert err.value.key == "runs[0].recipe" and "near" in err.value.expected

    with pytest.raises(TypeError, match="already registered"):
        @recipes.register
        class Impostor(Recipe):
            name = "near"


def test_decision_table_has_a_row_per_item_and_counts_every_drop(tmp_path):
    writer = DecisionWriter(tmp_path)
    decided = {"b": Decision("b", False, "near_duplicate", cluster_id="a", duplicate_of="a", similarity=0.9),
               "c": Decision("c", True, repeat=3)}
    assert writer.write_all(["a", "b", "c", "d"], decided) == 2
    counts = writer.close()
    assert counts == {"input": 4, "kept": 3, "dropped": 1, "dropped_by_reason": {"near_duplicate": 1}, "repeated": 2}
    table = pq.read_table(tmp_path / "decisions.parquet")
    assert table.column_names == ["id", "kept", "reason", "cluster_id", "duplicate_of", "similarity", "score", "repeat"]
    assert repeat_counts(tmp_path) == (["a", "b", "c", "d"], [1, 0, 3, 1])


def test_a_dropped_decision_needs_a_reason(tmp_path):
    writer = DecisionWriter(tmp_path)
    with pytest.raises(ValueError, match="reason"):
        writer.write(Decision("a", False))
