"""Users' own plug-ins: a recipe defined in a file next to the config runs end to end through the CLI."""

import json
import textwrap

import pyarrow.parquet as pq
import pytest

from corpuslab.cli import main
from corpuslab.config import load_config
from corpuslab.errors import ConfigError
from tests.conftest import TINY

SHORT_DOCS = '''
from dataclasses import dataclass

from corpuslab.curation.decisions import Decision
from corpuslab.curation.recipes import Recipe, recipes
from corpuslab.schema import require
from corpuslab.shards import read_documents


@recipes.register
class ShortDocs(Recipe):
    """Keep documents of fewer than `max_words` words; repeat the very short ones."""

    name = "short_docs"

    @dataclass(frozen=True)
    class Config:
        max_words: int = 30
        repeat_below: int = 0

        def validate(self, prefix):
            require(self.max_words > 0, f"{prefix}.max_words", self.max_words, "a positive integer")

    def decide(self, items, inputs, context):
        for doc in read_documents(items, columns=["id", "text"]):
            words = len(doc.text.split())
            if words >= self.config.max_words:
                yield Decision(doc.id, False, "too_long", score=float(words))
            elif words < self.config.repeat_below:
                yield Decision(doc.id, True, repeat=2, score=float(words))
'''


@pytest.fixture
def plugin_config(tmp_path):
    folder = tmp_path / "mylab"
    folder.mkdir()
    (folder / "short.py").write_text(SHORT_DOCS)
    (folder / "experiment.yaml").write_text(textwrap.dedent("""
        plugins: [short.py]          # resolved against this file's folder
        runs:
          - {name: all, recipe: none}
          - {name: short, recipe: short_docs, max_words: 40, repeat_below: 30}
    """))
    return folder / "experiment.yaml"


def test_a_users_recipe_runs_end_to_end_through_the_cli(tmp_path, plugin_config, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the plugin path resolves against the config file, not the working directory
    out = tmp_path / "out"
    from corpuslab.config import default_config_path

    code = main(["run", "--config", str(default_config_path()), "--config", str(plugin_config),
                 f"output_dir={out}", *TINY])
    assert code == 0
    report = json.loads((out / "tiny" / "report.json").read_text())
    short = report["arms"]["short"]
    assert short["curation"]["dropped_by_reason"]["too_long"] == short["curation"]["dropped"] > 0
    assert short["curation"]["repeated"] > 0
    decisions = pq.read_table(next((out / "tiny" / "stages").glob("curate-short_docs-doc-*")) / "decisions.parquet")
    rows = decisions.to_pylist()
    assert all((r["score"] >= 40) == (r["reason"] == "too_long") for r in rows if r["score"] is not None)
    assert {r["repeat"] for r in rows if r["kept"] and r["repeat"] is not None} == {2}
    # Packing honours the decisions: fewer documents than the reference arm, short ones twice.
    assert short["packing"]["documents_kept"] < report["arms"]["all"]["packing"]["documents_kept"]
    assert report["arms"]["short"]["replicates"][0]["metrics"]["val"]["loss"] > 0


def test_a_users_recipe_parameters_are_validated(plugin_config):
    from corpuslab.config import default_config_path

    with pytest.raises(ConfigError) as err:
        load_config([str(default_config_path()), str(plugin_config)], ["runs.1.max_words=0"])
    assert err.value.key == "runs[1].max_words"
    with pytest.raises(ConfigError) as err:
        load_config([str(default_config_path()), str(plugin_config)], ["runs.1.max_wrds=3"])
    assert err.value.key == "runs[1].max_wrds" and "max_words" in err.value.expected


def test_a_missing_plugin_file_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"plugins=[{tmp_path / 'nope.py'}]"])
    assert err.value.key == "plugins[0]"
    with pytest.raises(ConfigError) as err:
        load_config(None, ["plugins=[no_such_module_anywhere]"])
    assert err.value.key == "plugins[0]"


L1_PROCEDURE = '''
from dataclasses import dataclass
from corpuslab.training.callbacks import Callback
from corpuslab.training.procedures import Procedure, ProcedureConfig, procedures

class L1Penalty(Callback):
    def __init__(self, strength): self.strength = strength
    def loss(self, trainer, loss):
        return loss + self.strength * sum(p.abs().sum() for p in trainer.model.parameters() if p.dim() >= 2)

@procedures.register
class L1(Procedure):
    name = "l1"

    @dataclass(frozen=True)
    class Config(ProcedureConfig):
        strength: float = 1e-5

    def callbacks(self):
        return [L1Penalty(self.config.strength)]
'''


def test_the_readme_procedure_example_trains_an_arm(tmp_path):
    import corpuslab

    (tmp_path / "l1.py").write_text(L1_PROCEDURE)
    cfg = corpuslab.load_config(overrides=[f"output_dir={tmp_path / 'out'}", *TINY, f"plugins=[{tmp_path / 'l1.py'}]",
                                           "runs=[{name: plain, recipe: none}, {name: sparse, recipe: none, "
                                           "procedure: {name: l1, strength: 0.01, sampler: sequential}}]"])
    corpuslab.run(cfg, until="train", log=lambda _: None)
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "out" / "tiny" / "stages").glob("train-*/manifest.json")]
    procedures = {m["arm"]: m["result"]["procedure"] for m in manifests}
    assert procedures["sparse"]["name"] == "l1" and procedures["sparse"]["config"]["strength"] == 0.01
    assert procedures["plain"]["name"] == "standard"
    # The penalty did its work: a strong L1 term leaves smaller weights than plain training.
    from safetensors.torch import load_file

    def l1_norm(arm):
        folder = next(p.parent for p in (tmp_path / "out" / "tiny" / "stages").glob("train-*/manifest.json")
                      if json.loads(p.read_text())["arm"] == arm)
        return sum(float(t.abs().sum()) for t in load_file(folder / "final" / "model.safetensors").values() if t.dim() >= 2)

    assert l1_norm("sparse") < l1_norm("plain")


def test_a_plugin_missing_a_method_its_kind_requires_is_refused_at_registration():
    """A half-written plug-in fails when its module is imported, naming the method, not at the first run."""
    from corpuslab.curation.recipes import Recipe, recipes
    from corpuslab.training.samplers import Sampler, samplers

    class NoDecide(Recipe):
        name = "test_no_decide"

    class NoStarts(Sampler):
        name = "test_no_starts"

    with pytest.raises(TypeError, match=r"NoDecide: a recipe must implement decide \(Recipe declares them\)"):
        recipes.register(NoDecide)
    with pytest.raises(TypeError, match="NoStarts: a sampler must implement batch_starts"):
        samplers.register(NoStarts)
    assert "test_no_decide" not in recipes and "test_no_starts" not in samplers
