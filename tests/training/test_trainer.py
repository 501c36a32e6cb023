import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from corpuslab.errors import ConfigError, StageError
from corpuslab.training.model import PRESETS, ModelConfig, build_model, count_parameters
from corpuslab.training.trainer import (
    STATE_FILE,
    Callback,
    WindowSampler,
    learning_rate,
)
from tests.training.toy import MODEL, TEXT, VOCAB
from tests.training.toy import config as _config
from tests.training.toy import encode as _encode
from tests.training.toy import run as _train

# ---- model ----------------------------------------------------------------------------------------


def test_presets_and_overrides():
    assert ModelConfig("small").resolved().n_embd == PRESETS["small"]["n_embd"]
    cfg = ModelConfig("gpt2-124m", n_layer=2).validate()
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.context) == (2, 12, 768, 1024)


@pytest.mark.parametrize(
    "cfg, key",
    [(ModelConfig("huge"), "model.preset"), (ModelConfig(n_embd=30, n_head=4), "model.n_embd"),
     (ModelConfig(n_layer=0), "model.n_layer"), (ModelConfig(dropout=1.5), "model.dropout")],
)
def test_model_config_errors_name_the_key(cfg, key):
    with pytest.raises(ConfigError) as error:
        cfg.validate()
    assert error.value.key == key


def test_build_model_is_deterministic_and_counted():
    a, b = build_model(MODEL, VOCAB, seed=3), build_model(MODEL, VOCAB, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.transformer.wte.weight, build_model(MODEL, VOCAB, seed=4).transformer.wte.weight)
    d, layers = 32, 2
    per_layer = 12 * d * d + 13 * d  # attention + MLP weights and biases, two LayerNorms
    expected = VOCAB * d + 32 * d + layers * per_layer + 2 * d  # tied head counted once
    assert count_parameters(a) == expected
    assert count_parameters(a, non_embedding=True) == expected - VOCAB * d - 32 * d


# ---- configuration and schedule --------------------------------------------------------------------


def test_steps_are_the_min_of_both_limits():
    assert _config(max_steps=100, max_train_tokens=16 * 8 * 10).total_steps() == 10
    assert _config(max_steps=None, max_train_tokens=16 * 8 * 7 + 5).total_steps() == 7


@pytest.mark.parametrize(
    "overrides, key",
    [({"max_steps": None}, "training.max_steps"),
     ({"max_steps": None, "max_train_tokens": 10}, "training.max_train_tokens"),
     ({"precision": "fp8"}, "training.precision"), ({"betas": (0.9, 1.2)}, "training.betas"),
     ({"batch_size": 0}, "training.batch_size"), ({"resume": "maybe"}, "training.resume")],
)
def test_training_config_errors_name_the_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        _config(**overrides).validate()
    assert error.value.key == key


def test_learning_rate_warms_up_then_decays_to_min():
    cfg = _config(lr=1.0, warmup_steps=4, min_lr_ratio=0.1)
    lrs = [learning_rate(u, cfg, total_steps=20) for u in range(20)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))
    assert lrs[-1] == pytest.approx(0.1)


def test_sampler_visits_every_window_once_per_epoch():
    sampler = WindowSampler(n_windows=10, batch_size=4, seed=7)
    seen = np.concatenate([sampler.batch_indices(step) for step in range(5)])  # 20 samples = 2 epochs
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert not np.array_equal(seen[:10], seen[10:])  # a new permutation per epoch
    np.testing.assert_array_equal(WindowSampler(10, 4, seed=7).batch_indices(3), sampler.batch_indices(3))


# ---- training --------------------------------------------------------------------------------------


def test_loss_decreases_on_repetitive_data(streams, tmp_path):
    _, result = _train(streams, tmp_path, _config(max_steps=60, log_interval=10, eval_interval=30))
    losses = [e["loss"] for e in result.curve if e["loss"] is not None]
    assert losses[-1] < 0.5 * losses[0]
    assert result.best_val_loss < math.log(VOCAB)  # better than uniform
    assert result.steps == 60 and result.tokens_seen == 60 * 8 * 16
    assert result.epochs_seen == pytest.approx(result.tokens_seen / (len(streams[0].windows(16)) * 16))
    assert result.tokens_per_second > 0


def test_checkpoint_loads_with_auto_class_and_same_logits(streams, tmp_path):
    model, result = _train(streams, tmp_path, _config())
    loaded = AutoModelForCausalLM.from_pretrained(result.final_path)
    inputs = torch.from_numpy(_encode(TEXT[:20]))[None]
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(inputs).logits, model(inputs).logits, rtol=0, atol=1e-6)
    assert (result.final_path / "model.safetensors").exists()
    assert result.best_path == tmp_path / "best" and (result.best_path / "config.json").exists()
    val_losses = [e["val_loss"] for e in result.curve if e["val_loss"] is not None]
    assert result.curve[-1]["val_loss"] == val_losses[-1] and result.best_val_loss == min(val_losses)


def test_two_identical_runs_give_the_same_curve(streams, tmp_path):
    _, first = _train(streams, tmp_path / "a", _config())
    _, second = _train(streams, tmp_path / "b", _config())
    assert first.curve == second.curve
    _, other_seed = _train(streams, tmp_path / "c", _config(seed=2))
    assert other_seed.curve != first.curve


class CrashAfter(Callback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, trainer) -> None:
        if trainer.step == self.step:
            raise KeyboardInterrupt(f"simulated crash at step {self.step}")


def test_resume_after_a_crash_equals_an_uninterrupted_run(streams, tmp_path):
    cfg = _config(max_steps=12, save_every=4, keep_last=1)
    uninterrupted, full = _train(streams, tmp_path / "full", cfg)

    with pytest.raises(KeyboardInterrupt):  # saved at step 8, crashed at step 10: steps 9-10 are redone
        _train(streams, tmp_path / "resumed", cfg, callbacks=[CrashAfter(10)])
    resumed, result = _train(streams, tmp_path / "resumed", cfg)

    assert result.resumed_from_step == 8
    for name, tensor in uninterrupted.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
    assert result.curve == full.curve
    assert (result.best_val_loss, result.best_step) == (full.best_val_loss, full.best_step)
    assert sorted(p.name for p in (tmp_path / "resumed").glob("step-*")) == ["step-12"]


def test_trainer_state_is_plain_tensors(streams, tmp_path):
    _train(streams, tmp_path, _config(max_steps=3))
    state = torch.load(tmp_path / "last" / STATE_FILE, weights_only=True)  # no arbitrary unpickling
    assert state["step"] == 3 and "optimizer" in state and "rng" in state
    assert "transformer.wte.weight" in load_file(tmp_path / "last" / "model.safetensors")


def test_a_finished_run_is_not_retrained(streams, tmp_path):
    _train(streams, tmp_path, _config(max_steps=3))
    model, result = _train(streams, tmp_path, _config(max_steps=3))
    assert result.resumed_from_step == 3 and result.steps == 3


def test_resume_finds_the_state_moved_aside_by_a_crash_between_renames(streams, tmp_path):
    _train(streams, tmp_path, _config(max_steps=3))
    (tmp_path / "last").rename(tmp_path / "last.old")
    _, result = _train(streams, tmp_path, _config(max_steps=3))
    assert result.resumed_from_step == 3
    assert (tmp_path / "last" / STATE_FILE).exists() and not (tmp_path / "last.old").exists()


def test_bf16_autocast_trains_with_fp32_master_weights(streams, tmp_path):
    model, result = _train(streams, tmp_path, _config(max_steps=4, precision="bf16"))
    assert all(math.isfinite(e["loss"]) for e in result.curve if e["loss"] is not None)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_resume_refuses_a_changed_config(streams, tmp_path):
    _train(streams, tmp_path, _config(max_steps=3))
    with pytest.raises(StageError, match="lr"):
        _train(streams, tmp_path, _config(max_steps=3, lr=1e-2))
    _, fresh = _train(streams, tmp_path, _config(max_steps=3, lr=1e-2, resume="never"))
    assert fresh.resumed_from_step is None


def test_exploding_lr_raises_naming_the_step(streams, tmp_path):
    with pytest.raises(StageError, match=r"non-finite (loss|gradient norm) at step \d+") as error:
        _train(streams, tmp_path, _config(lr=1e30, warmup_steps=0, grad_clip=0.0))
    assert error.value.stage == "train"


def test_nan_weights_raise_at_step_one(streams, tmp_path):
    model = build_model(MODEL, VOCAB, seed=0)
    with torch.no_grad():
        model.transformer.ln_f.weight.fill_(float("nan"))
    with pytest.raises(StageError, match="non-finite loss at step 1 "):
        _train(streams, tmp_path, _config(), model=model)
