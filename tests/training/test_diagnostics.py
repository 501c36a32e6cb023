"""Training diagnostics: AdamW eps, gradient norms before/after clipping, parameter norm, non-finite steps
stopped with their batch and norms saved, logit checks and anomaly mode."""

import json

import pytest
import torch
import torch.nn.functional as F

from corpuslab.errors import ConfigError, StageError
from corpuslab.training.model import build_model
from corpuslab.training.trainer import NONFINITE_PREFIX, Callback
from tests.training.toy import MODEL, VOCAB, write_streams
from tests.training.toy import config as _config
from tests.training.toy import run as _train


@pytest.fixture
def streams(tmp_path):
    return write_streams(tmp_path / "data")


def _nan_model():
    model = build_model(MODEL, VOCAB, seed=0, eos_id=0)
    with torch.no_grad():
        model.transformer.ln_f.weight.fill_(float("nan"))
    return model


def test_adam_eps_is_a_knob_that_changes_the_weights(streams, tmp_path):
    default, _ = _train(streams, tmp_path / "a", _config(max_steps=3))
    large_eps, _ = _train(streams, tmp_path / "b", _config(max_steps=3, adam_eps=1.0))
    assert not torch.equal(default.transformer.wte.weight, large_eps.transformer.wte.weight)
    with pytest.raises(ConfigError, match="training.adam_eps"):
        _config(adam_eps=0.0).validate()


def test_curve_records_grad_norm_before_and_after_clipping_and_the_parameter_norm(streams, tmp_path):
    model, result = _train(streams, tmp_path, _config(max_steps=8, log_interval=1, grad_clip=0.05, lr=1e-2))
    entries = [e for e in result.curve if e["loss"] is not None]
    assert len(entries) == 8
    for entry in entries:
        assert entry["grad_norm"] > 0.05  # a tiny clip: every step is clipped to it
        assert entry["grad_norm_clipped"] == pytest.approx(0.05, rel=1e-4)
    unique = {id(p): p for p in model.parameters()}.values()  # the tied head counted once
    expected = torch.linalg.vector_norm(torch.stack([p.detach().norm() for p in unique])).item()
    assert entries[-1]["param_norm"] == pytest.approx(expected, rel=1e-5)
    _, unclipped = _train(streams, tmp_path / "free", _config(max_steps=2, log_interval=1, grad_clip=0.0))
    assert all(e["grad_norm_clipped"] == e["grad_norm"] for e in unclipped.curve if e["loss"] is not None)


def test_a_non_finite_loss_stops_naming_the_step_and_saves_batch_and_norms(streams, tmp_path):
    with pytest.raises(StageError, match=r"non-finite loss at step 1 .*transformer\.ln_f\.weight") as error:
        _train(streams, tmp_path, _config(), model=_nan_model())
    folder = tmp_path / f"{NONFINITE_PREFIX}1"
    assert str(folder) in str(error.value)
    diagnostics = json.loads((folder / "diagnostics.json").read_text())
    assert diagnostics["step"] == 1 and diagnostics["non_finite_parameters"] == ["transformer.ln_f.weight"]
    assert diagnostics["logits_finite"] is False and diagnostics["loss"] == "nan"
    batch = torch.load(folder / "batch.pt", weights_only=True)
    assert batch["inputs"].shape == (8, 16) and batch["targets"].shape == (8, 16)
    # The saved batch reproduces the failure on the same model, and is the sampler's batch of step 1.
    train_stream, _ = streams
    inputs, targets = train_stream.batch(batch["starts"].numpy(), 16)
    assert torch.equal(inputs, batch["inputs"]) and torch.equal(targets, batch["targets"])
    logits = _nan_model()(input_ids=batch["inputs"]).logits
    assert torch.isnan(F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten()))


def test_check_logits_stops_at_the_forward_pass(streams, tmp_path):
    with pytest.raises(StageError, match="non-finite logits at step 1"):
        _train(streams, tmp_path, _config(check_logits=True), model=_nan_model())
    assert (tmp_path / f"{NONFINITE_PREFIX}1" / "batch.pt").is_file()


class BackwardNaN(Callback):
    """A loss term that is 0 going forward but whose backward is 0 * inf = NaN (sqrt at 0)."""

    def loss(self, trainer, loss):
        bias = trainer.model.transformer.ln_f.bias
        return loss + torch.sqrt(((bias - bias.detach()) ** 2).sum())


@pytest.mark.filterwarnings("ignore:Error detected in:UserWarning")  # anomaly mode's forward traceback, expected here
@pytest.mark.filterwarnings("ignore:Anomaly Detection has been enabled:UserWarning")
def test_anomaly_mode_names_the_operation_that_made_a_nan(streams, tmp_path):
    with pytest.raises(StageError, match="non-finite gradient norm at step 1") as plain:
        _train(streams, tmp_path / "plain", _config(), callbacks=[BackwardNaN()])
    assert "Backward" not in str(plain.value)
    with pytest.raises(StageError, match=r"non-finite backward \(anomaly detection\) at step 1 .*Backward"):
        _train(streams, tmp_path / "anomaly", _config(detect_anomaly=True), callbacks=[BackwardNaN()])
    assert (tmp_path / "anomaly" / f"{NONFINITE_PREFIX}1" / "diagnostics.json").is_file()
