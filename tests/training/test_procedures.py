"""Training procedures: built from config specs, fingerprinted by what they do, recorded with the run."""

import pytest
import torch

from corpuslab.errors import ConfigError, StageError
from corpuslab.training.callbacks import Callback
from corpuslab.training.procedures import Procedure, Standard, procedures
from tests.training.toy import Crash, config, run


def _build(spec):
    return procedures.build(spec, "runs[0].procedure", default="standard")


def test_one_procedure_spelled_many_ways_has_one_fingerprint():
    spellings = [None, "standard", {"name": "standard"}, {"name": "standard", "sampler": "shuffled"},
                 {"name": "standard", "sampler": {"name": "shuffled"}}]
    assert len({_build(spec).fingerprint() for spec in spellings}) == 1
    assert _build(None).fingerprint() == Standard().fingerprint()
    sequential = _build({"name": "standard", "sampler": "sequential"})
    assert sequential.fingerprint() != Standard().fingerprint()
    assert sequential.describe() == {"name": "standard", "version": 1,
                                     "config": {"sampler": {"name": "sequential", "version": 1, "config": {}}}}


def test_unknown_procedure_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"one of the known procedures \[.*'standard'.*\]") as error:
        _build("regularised")
    assert error.value.key == "runs[0].procedure"


def test_the_run_records_its_procedure_and_sampler(streams, tmp_path):
    _, result = run(streams, tmp_path, config(max_steps=2))
    assert result.procedure == Standard().describe()
    assert result.sampler_stats == {"windows": len(streams[0].windows(16))}
    summary = result.to_dict()
    assert summary["procedure"]["config"]["sampler"]["name"] == "shuffled"


def test_default_and_explicit_standard_train_identically(streams, tmp_path):
    _, default = run(streams, tmp_path / "default", config(max_steps=4))
    _, explicit = run(streams, tmp_path / "explicit", config(max_steps=4),
                      procedure=_build({"name": "standard", "sampler": "shuffled"}))
    assert default.curve == explicit.curve


def test_a_sequential_run_resumes_bit_identically(streams, tmp_path):
    cfg = config(max_steps=12, save_every=4, keep_last=1)
    sequential = {"name": "standard", "sampler": "sequential"}
    full_model, full = run(streams, tmp_path / "full", cfg, procedure=_build(sequential))
    with pytest.raises(KeyboardInterrupt):
        run(streams, tmp_path / "resumed", cfg, procedure=_build(sequential), callbacks=[Crash("on_batch_loss", 7)])
    model, resumed = run(streams, tmp_path / "resumed", cfg, procedure=_build(sequential))
    assert resumed.resumed_from_step == 4 and resumed.curve == full.curve
    for name, tensor in full_model.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name]), name
    _, shuffled = run(streams, tmp_path / "shuffled", cfg)
    assert shuffled.curve != full.curve  # the order of the data is part of the run


def test_a_random_window_run_reports_what_it_skipped(streams, tmp_path):
    _, result = run(streams, tmp_path, config(max_steps=3, chunk_len=16),
                    procedure=_build({"name": "standard", "sampler": "random_window"}))
    assert result.steps == 3
    assert result.sampler_stats["documents_skipped_shorter_than_window"] == 0
    assert result.sampler_stats["documents_sampled"] == streams[0].n_docs


def test_resume_refuses_a_changed_procedure(streams, tmp_path):
    run(streams, tmp_path, config(max_steps=3))
    with pytest.raises(StageError, match="training procedure"):
        run(streams, tmp_path, config(max_steps=3), procedure=_build({"name": "standard", "sampler": "sequential"}))


class Order(Callback):
    def __init__(self, seen: list[str]):
        self.seen = seen

    def on_step_end(self, trainer):
        self.seen.append("procedure")
        if trainer.curve and trainer.curve[-1]["step"] == trainer.step:
            self.seen.append("after validation")  # must not happen: the procedure's callbacks run first


class After(Callback):
    def __init__(self, seen: list[str]):
        self.seen = seen

    def on_step_end(self, trainer):
        self.seen.append("user")


class Ordered(Procedure):
    """A procedure supplying a callback (not registered: a procedure object is all train() needs)."""

    name = "ordered"

    def __init__(self, seen: list[str]):
        super().__init__()
        self.seen = seen

    def callbacks(self):
        return [Order(self.seen)]


def test_a_procedures_callbacks_run_before_the_built_in_and_user_ones(streams, tmp_path):
    seen: list[str] = []
    _, result = run(streams, tmp_path, config(max_steps=2, log_interval=1), procedure=Ordered(seen),
                    callbacks=[After(seen)])
    assert seen == ["procedure", "user"] * 2
    assert result.procedure["name"] == "ordered"
