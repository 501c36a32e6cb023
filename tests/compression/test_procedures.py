"""The compression procedures' formulas, TAMADE, the phase schedule and exact resume mid-phase."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from corpuslab.compression.data import chunk_starts, write_byte_stream
from corpuslab.compression.procedures import (
    PMMP,
    RL1,
    CompressionConfig,
    PhaseConfig,
    PMMPConfig,
    PMMPVariables,
    Schedule,
    drr_gradient,
    drr_penalty,
    pmmp_gradients,
    pmmp_objective,
    rl1_gradient,
    rl1_penalty,
    tamade_threshold,
)
from corpuslab.tokens.stream import TokenStream
from corpuslab.training.callbacks import Callback
from corpuslab.training.config import ModelConfig, TrainingConfig
from corpuslab.training.model import build_model
from corpuslab.training.samplers import SamplingData
from corpuslab.training.trainer import train


def _theta():
    generator = torch.Generator().manual_seed(0)
    theta = torch.randn(5, 7, generator=generator, dtype=torch.float64) * 0.5
    theta[0, :3] = torch.tensor([0.7, -1e-3, 2e-4], dtype=torch.float64)
    return theta


def _autograd(penalty, theta):
    leaf = theta.clone().requires_grad_(True)
    penalty(leaf).backward()
    return leaf.grad


def test_rl1_gradient_term_is_autograd_of_its_penalty():
    theta = _theta()
    expected = _autograd(lambda t: rl1_penalty(t, 3e-3), theta)
    assert torch.allclose(rl1_gradient(theta, 3e-3), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("beta", [1.0, 5.0, 20.0])
def test_drr_gradient_term_is_autograd_of_its_penalty(beta):
    theta = _theta()
    expected = _autograd(lambda t: drr_penalty(t, 2e-3, beta), theta)
    assert torch.allclose(drr_gradient(theta, 2e-3, beta), expected, rtol=1e-12, atol=1e-15)


def _pmmp_tensors():
    generator = torch.Generator().manual_seed(1)
    a, w = (torch.randn(3, 4, generator=generator, dtype=torch.float64) for _ in range(2))
    p = torch.rand(3, 4, generator=generator, dtype=torch.float64)
    u = torch.rand(3, 4, generator=generator, dtype=torch.float64)
    return a, w, p, u


def test_pmmp_gradients_are_autograd_of_the_objective_with_u_ascending():
    a, w, p, u = (t.clone().requires_grad_(True) for t in _pmmp_tensors())
    pmmp_objective(a, w, p, u, 0.05).backward()
    grads = pmmp_gradients(a.detach(), w.detach(), p.detach(), u.detach(), 0.05)
    for mine, leaf, sign in zip(grads, (a, w, p, u), (1, 1, 1, -1)):
        assert torch.allclose(mine, sign * leaf.grad, rtol=1e-12, atol=1e-14)


def _phased(procedure, n_windows=4, batch_size=4):
    procedure.sampler.setup(SamplingData(None, np.arange(n_windows), 8, batch_size, 0))
    return procedure.sampler


def test_pmmp_callback_updates_match_the_formulas_on_a_tiny_tensor():
    """One main-phase update through the callback: a's gradient gains 2u(a - wp); w, p, u take Adam's first step
    (lr * sign of their formula gradient) and p is clamped to [0, 1]."""
    model = torch.nn.Linear(3, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, -0.2, 0.0], [1.5, 0.3, -0.9]], dtype=torch.float64))
    procedure = PMMP(PMMPConfig(alpha=0.1, initial_p_value=0.9, main=PhaseConfig(epochs=2)))
    sampler = _phased(procedure)
    callback = PMMPVariables(sampler, alpha=0.1, initial_p=0.9)
    lr = 0.01
    trainer = SimpleNamespace(model=model, step=0, cfg=SimpleNamespace(lr=lr, betas=(0.9, 0.999)),
                              optimizer=SimpleNamespace(param_groups=[{"lr": lr}]), device=torch.device("cpu"))
    a0 = model.weight.detach().clone()
    model.weight.grad = torch.zeros_like(a0)
    callback.before_optimizer_step(trainer)
    # At initialisation w = a, p = 0.9, u = 0: a's extra gradient is 2u(a - wp) = 0; u's is -(a - wp)^2 - w^2 p(1-p).
    assert torch.equal(model.weight.grad, torch.zeros_like(a0))
    w0, p0, u0 = a0.clone(), torch.full_like(a0, 0.9), torch.zeros_like(a0)
    _, grad_w, grad_p, grad_u = pmmp_gradients(a0, w0, p0, u0, 0.1)
    assert torch.allclose(callback.u[0].grad, -((a0 - w0 * p0) ** 2 + w0**2 * p0 * (1 - p0)))
    callback.after_optimizer_step(trainer)

    def adam_first_step(value, grad):  # Adam's bias-corrected first update: lr * g / (|g| + eps)
        return value - lr * grad / (grad.abs() + 1e-8)

    assert torch.allclose(callback.w[0].detach(), adam_first_step(w0, grad_w))
    assert torch.allclose(callback.p[0].detach(), adam_first_step(p0, grad_p).clamp(0, 1))
    assert torch.allclose(callback.u[0].detach(), adam_first_step(u0, grad_u))
    assert (callback.u[0] > 0).any()  # u ascends: the constraint violation is positive wherever w != 0
    # alpha pushes p down: dL/dp = alpha at u = 0
    assert torch.allclose(callback.p[0].detach(), torch.full_like(p0, 0.9 - lr), atol=1e-7)

    # A second update with u > 0 now couples a to w p: a's gradient gains exactly 2u(a - wp).
    with torch.no_grad():
        model.weight.add_(0.05)
    model.weight.grad = torch.zeros_like(a0)
    a1, w1, p1, u1 = (t.detach().clone() for t in (model.weight, callback.w[0], callback.p[0], callback.u[0]))
    callback.before_optimizer_step(trainer)
    assert torch.allclose(model.weight.grad, 2 * u1 * (a1 - w1 * p1))


def test_pmmp_clamps_p_to_the_unit_interval():
    model = torch.nn.Linear(2, 2, bias=False).double()
    procedure = PMMP(PMMPConfig(alpha=0.0, initial_p_value=1.0))
    callback = PMMPVariables(_phased(procedure), alpha=-5.0, initial_p=1.0)  # a negative price pushes p above 1
    trainer = SimpleNamespace(model=model, step=0, cfg=SimpleNamespace(lr=0.1, betas=(0.9, 0.999)),
                              optimizer=SimpleNamespace(param_groups=[{"lr": 0.1}]), device=torch.device("cpu"))
    model.weight.grad = torch.zeros_like(model.weight)
    callback.before_optimizer_step(trainer)
    callback.after_optimizer_step(trainer)
    assert torch.equal(callback.p[0].detach(), torch.ones_like(model.weight))


def test_tamade_finds_the_largest_threshold_within_tolerance():
    # Loss rises as 1 + eps^2: with tau = 0.01 the largest eps meeting L <= 1.01 is exactly 0.1.
    eps, loss, steps = tamade_threshold(lambda e: 1.0 + e * e, 1.0, 0.01, high=0.8, tolerance=1e-7, max_steps=50)
    assert 0.1 - 1e-7 <= eps <= 0.1 and loss <= 1.01 and steps <= 50
    # A step: pruning anything of magnitude >= 0.37 breaks the model.
    eps, _, _ = tamade_threshold(lambda e: 1.0 if e <= 0.37 else 9.0, 1.0, 0.0)
    assert 0.37 - 1e-7 <= eps <= 0.37
    # The step cap ends the search early, still on a threshold that meets the tolerance.
    eps, loss, steps = tamade_threshold(lambda e: 1.0 + e * e, 1.0, 0.01, max_steps=3)
    assert steps == 3 and eps == 0.1 and loss <= 1.01  # 0.4 fails, 0.2 fails, 0.1 (= 1.01) passes


def test_tamade_prunes_a_model_to_the_largest_threshold_that_keeps_the_loss(tmp_path, one_thread):
    """On a real model: weights below the threshold found are zero, and the validation loss stays within tolerance."""
    model, stream, windows, val, val_windows = _tiny_setup(tmp_path)
    procedure = RL1(_phases(pruning_at=1, alpha=0.0))
    cfg = _training(procedure, windows)
    lines = []
    train(model, stream, windows, val, val_windows, cfg, tmp_path / "run", log=lines.append, procedure=procedure)
    history = procedure.created[1].history
    assert len(history) == 3 and all(h["loss"] <= h["baseline_loss"] * 1.05 + 1e-12 for h in history)
    assert history[0]["threshold"] > 0 and history[2]["nonzero_params"] <= history[0]["nonzero_params"]
    masks = procedure.created[1].masks
    for (_, param), mask in zip(model.named_parameters(), masks):
        assert torch.all(param[~mask] == 0)


def test_schedule_lays_out_phases_epochs_and_repeats():
    phases = {"prelude": PhaseConfig(epochs=1), "main": PhaseConfig(epochs=2, stop_epoch_at_batch=2, steps_per_chunk=2),
              "fine_tuning": PhaseConfig(epochs=1)}
    schedule = Schedule(phases, n_windows=10, batch_size=4)  # 3 batches per full epoch, the last of 2 chunks
    assert schedule.steps == {"prelude": 3, "main": 8, "fine_tuning": 3} and schedule.total == 14
    first = schedule.position(0)
    assert first.phase == "prelude" and first.first_pass and not first.epoch_end
    assert schedule.position(2).epoch_end and list(schedule.window_indices(schedule.position(2))) == [8, 9]
    main = [schedule.position(s) for s in range(3, 11)]
    assert [(p.epoch, p.batch, p.repeat) for p in main] == [(0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1),
                                                            (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)]
    assert [p.epoch_end for p in main] == [False, False, False, True, False, False, False, True]
    assert not any(p.first_pass for p in main)


# ----------------------------------------------------------------------------------------- exact resume


def _tiny_setup(tmp_path):
    text = ("It was the best of times, it was the worst of times, it was the age of wisdom. " * 12).encode()
    write_byte_stream(tmp_path / "train", text[:640], 32)
    write_byte_stream(tmp_path / "val", text[640:896], 32)
    stream, val = TokenStream.open(tmp_path / "train"), TokenStream.open(tmp_path / "val")
    model = build_model(ModelConfig(preset="tiny", n_layer=1, n_head=2, n_embd=16, context=32), vocab_size=256, seed=3)
    return model, stream, chunk_starts(20, 32), val, chunk_starts(8, 32)


def _phases(pruning_at: int, **params):
    return _config(pruning_at, params)


def _config(pruning_at: int, params: dict):
    from corpuslab.compression.procedures import PruningConfig, RL1Config

    cls = PMMPConfig if "initial_p_value" in params else RL1Config
    return cls(prelude=PhaseConfig(epochs=1), main=PhaseConfig(epochs=3), fine_tuning=PhaseConfig(epochs=1),
               pruning=PruningConfig(enabled=True, first_pruning_after=pruning_at, prune_every=1,
                                     tolerated_relative_loss_increase=0.05, validation_sequences=4, max_search_steps=12),
               **params)


def _training(procedure, windows, **overrides):
    steps = procedure.total_steps(len(windows), 4)
    return TrainingConfig(chunk_len=31, batch_size=4, max_steps=steps, lr=3e-3, warmup_steps=0, min_lr_ratio=1.0,
                          weight_decay=0.0, grad_clip=0.0, betas=(0.9, 0.999), eval_interval=1000, log_interval=1000,
                          device="cpu", **overrides)


class _Interrupt(Exception):
    pass


class _StopAt(Callback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer):
        if trainer.step == self.step:
            trainer.save_state(trainer.out_dir / "last")
            raise _Interrupt


def test_resumed_run_mid_main_phase_is_bit_identical(tmp_path, one_thread):
    """PMMP with pruning after main epochs 1, 2 and 3; interrupted in main epoch 2 (after the first pruning, with
    PMMP variables and a mask live), then resumed: weights, mask, w/p/u and code-length sums match exactly."""
    outcomes = []
    for interrupted in (False, True):
        folder = tmp_path / ("interrupted" if interrupted else "straight")
        model, stream, windows, val, val_windows = _tiny_setup(folder)
        procedure = PMMP(_config(1, {"alpha": 1e-3, "initial_p_value": 0.8}))
        cfg = _training(procedure, windows)
        assert cfg.max_steps == 25  # 5 batches x (1 + 3 + 1) epochs
        if interrupted:
            with pytest.raises(_Interrupt):
                train(model, stream, windows, val, val_windows, cfg, folder / "run", log=lambda _: None,
                      callbacks=[_StopAt(13)], procedure=procedure)  # main epoch 2 of 3, mid-epoch
            model, stream, windows, val, val_windows = _tiny_setup(folder)
            procedure = PMMP(_config(1, {"alpha": 1e-3, "initial_p_value": 0.8}))
        result = train(model, stream, windows, val, val_windows, cfg, folder / "run", log=lambda _: None, procedure=procedure)
        assert result.resumed_from_step == (13 if interrupted else None)
        pmmp, pruning, code = procedure.created
        outcomes.append({"weights": {k: v.clone() for k, v in model.state_dict().items()},
                         "masks": pruning.masks, "history": pruning.history,
                         "w": pmmp.w, "p": pmmp.p, "u": pmmp.u,
                         "code": (code.online_bits, code.online_tokens, code.epochs)})
    straight, resumed = outcomes
    assert straight["weights"].keys() == resumed["weights"].keys()
    for key in straight["weights"]:
        assert torch.equal(straight["weights"][key], resumed["weights"][key]), key
    assert len(straight["masks"]) > 0 and all(torch.equal(a, b) for a, b in zip(straight["masks"], resumed["masks"]))
    assert straight["history"] == resumed["history"] and len(straight["history"]) == 3
    for name in ("w", "p", "u"):
        assert all(torch.equal(a.detach(), b.detach()) for a, b in zip(straight[name], resumed[name]))
    assert straight["code"] == resumed["code"] and straight["code"][1] == 20 * 31
    assert any(bool((m == 0).any()) for m in [~mask for mask in straight["masks"]])  # something was pruned


def test_compression_config_rejects_a_sampler():
    from corpuslab.errors import ConfigError

    with pytest.raises(ConfigError, match="procedure.sampler"):
        CompressionConfig(sampler="shuffled").validate()


def test_a_step_count_that_does_not_fit_the_phases_stops_before_the_first_update(tmp_path, one_thread):
    from corpuslab.errors import ConfigError

    model, stream, windows, val, val_windows = _tiny_setup(tmp_path)
    procedure = RL1(_config(1, {"alpha": 1e-3}))
    cfg = _training(procedure, windows)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError, match=r"'training.max_steps'.*7.*the 25 updates"):
        train(model, stream, windows, val, val_windows, TrainingConfig(**{**cfg.__dict__, "max_steps": 7}),
              tmp_path / "run", log=lambda _: None, procedure=procedure)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_compression_procedures_are_plugins_of_any_experiment(tmp_path):
    """`plugins: [corpuslab.compression]` makes them available to an arm, validated at config load."""
    from corpuslab.config import load_config
    from corpuslab.errors import ConfigError

    arm = "runs=[{name: a, recipe: none, procedure: {name: drr, alpha: -1.0}}]"
    with pytest.raises(ConfigError, match=r"'runs\[0\].procedure.alpha'.*-1.0"):
        load_config(overrides=["plugins=[corpuslab.compression]", arm])
    cfg = load_config(overrides=["plugins=[corpuslab.compression]", arm.replace("-1.0", "0.001")])
    assert cfg.arm_procedure(0).name == "drr" and cfg.arm_procedure(0).config.beta == 5.0
