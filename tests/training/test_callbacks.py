"""Callback hooks: order, values, loss terms, gradient and weight masks, and state that survives resume."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from corpuslab.errors import StageError
from corpuslab.training.callbacks import Callback
from corpuslab.training.model import build_model
from corpuslab.training.trainer import STATE_FILE
from tests.training.toy import MODEL, VOCAB, Crash, config, run

STEP_HOOKS = ["on_batch_loss", "loss", "before_optimizer_step", "after_optimizer_step", "on_step_end"]


class Recorder(Callback):
    """Records (hook, step) for every hook, and what on_batch_loss and loss received."""

    def __init__(self):
        self.events: list[tuple[str, int]] = []
        self.batch_losses: list[tuple[float, int]] = []
        self.recomputed: list[float] = []
        self.loss_inputs: list[float] = []

    def on_train_start(self, trainer):
        self.events.append(("on_train_start", trainer.step))

    def on_batch_loss(self, trainer, loss, tokens):
        self.events.append(("on_batch_loss", trainer.step))
        self.batch_losses.append((loss, tokens))
        self.recomputed.append(_loss_of_current_batch(trainer))  # with the weights before this update

    def loss(self, trainer, loss):
        self.events.append(("loss", trainer.step))
        self.loss_inputs.append(loss.item())
        return loss

    def before_optimizer_step(self, trainer):
        self.events.append(("before_optimizer_step", trainer.step))

    def after_optimizer_step(self, trainer):
        self.events.append(("after_optimizer_step", trainer.step))

    def on_step_end(self, trainer):
        self.events.append(("on_step_end", trainer.step))

    def on_train_end(self, trainer):
        self.events.append(("on_train_end", trainer.step))


def _loss_of_current_batch(trainer) -> float:
    starts = trainer.sampler.batch_starts(trainer.step)
    inputs, targets = trainer.train_stream.batch(starts, trainer.cfg.chunk_len)
    with torch.no_grad():
        logits = trainer.model(input_ids=inputs, use_cache=False).logits
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten()).item()


class AddOne(Callback):
    def loss(self, trainer, loss):
        return loss + 1.0


def test_hooks_run_in_order_with_the_loss_before_the_update(streams, tmp_path):
    recorder = Recorder()
    cfg = config(max_steps=4, log_interval=4)
    _, result = run(streams, tmp_path, cfg, callbacks=[AddOne(), recorder])

    expected = [("on_train_start", 0)]
    for step in range(4):  # `trainer.step` counts the update from on_step_end on
        expected += [(hook, step) for hook in STEP_HOOKS[:4]] + [("on_step_end", step + 1)]
    assert recorder.events == expected + [("on_train_end", 4)]

    losses = [loss for loss, _ in recorder.batch_losses]
    assert all(tokens == cfg.batch_size * cfg.chunk_len for _, tokens in recorder.batch_losses)
    np.testing.assert_allclose(losses, recorder.recomputed, rtol=0, atol=1e-6)  # before, not after, the update
    assert result.curve[0]["loss"] == sum(losses) / 4  # the curve is the same cross-entropy, penalty excluded
    np.testing.assert_allclose(recorder.loss_inputs, [loss + 1.0 for loss in losses], rtol=1e-6)  # chained


class L1Penalty(Callback):
    def __init__(self, alpha: float):
        self.alpha = alpha

    def loss(self, trainer, loss):
        return loss + self.alpha * _target(trainer.model).abs().sum()


class GradientProbe(Callback):
    def __init__(self):
        self.first_grad = None

    def before_optimizer_step(self, trainer):
        if self.first_grad is None:
            self.first_grad = _target(trainer.model).grad.detach().clone()


def _target(model) -> torch.nn.Parameter:
    return model.transformer.h[0].mlp.c_fc.weight  # not tied, decayed


def test_a_penalty_from_loss_shows_up_in_the_gradient(streams, tmp_path):
    cfg = config(max_steps=1, grad_clip=0.0)  # unclipped, so gradients add up exactly
    plain, penalized = GradientProbe(), GradientProbe()
    run(streams, tmp_path / "plain", cfg, callbacks=[plain])
    run(streams, tmp_path / "l1", cfg, callbacks=[L1Penalty(0.1), penalized])
    weights = _target(_fresh_model()).detach()  # the first gradient is taken at the initial weights
    torch.testing.assert_close(penalized.first_grad - plain.first_grad, 0.1 * torch.sign(weights),
                               rtol=0, atol=1e-5)


def _fresh_model():
    return build_model(MODEL, VOCAB, seed=0, eos_id=0)  # what `run` trains


MASK = (slice(0, 16), slice(None))  # the first 16 rows of the target matrix


class MaskGradients(Callback):
    def before_optimizer_step(self, trainer):
        _target(trainer.model).grad[MASK] = 0.0


class ZeroWeights(Callback):
    def __init__(self):
        self.seen_nonzero = False

    def on_batch_loss(self, trainer, loss, tokens):  # every forward after the first sees the pruned weights
        if trainer.step > 0 and bool(_target(trainer.model)[MASK].any()):
            self.seen_nonzero = True

    def after_optimizer_step(self, trainer):
        with torch.no_grad():
            _target(trainer.model)[MASK] = 0.0


def test_a_gradient_mask_keeps_masked_weights_unchanged(streams, tmp_path):
    initial = _target(_fresh_model()).detach().clone()
    # Without weight decay: AdamW's decoupled decay shrinks weights whatever their gradient.
    model, _ = run(streams, tmp_path, config(weight_decay=0.0), callbacks=[MaskGradients()])
    final = _target(model).detach()
    assert torch.equal(final[MASK], initial[MASK])
    assert not torch.equal(final[16:], initial[16:])


def test_after_optimizer_step_can_zero_weights(streams, tmp_path):
    zero = ZeroWeights()
    model, _ = run(streams, tmp_path, config(), callbacks=[zero])
    assert not _target(model)[MASK].any() and _target(model)[16:].any()
    assert not zero.seen_nonzero


class CodeLength(Callback):
    """Online (prequential) code length: each batch's loss before its update, in bits, summed."""

    name = "code_length"

    def __init__(self):
        self.bits = torch.zeros((), dtype=torch.float64)
        self.batches = 0

    def on_batch_loss(self, trainer, loss, tokens):
        self.bits += loss / math.log(2) * tokens
        self.batches += 1

    def state_dict(self):
        return {"bits": self.bits.clone(), "batches": self.batches}

    def load_state_dict(self, state):
        self.bits, self.batches = state["bits"].clone(), state["batches"]


@pytest.mark.parametrize("hook, step, resumed_from", [("on_step_end", 8, 4), ("on_batch_loss", 10, 8)])
def test_a_resumed_run_ends_bit_identical_with_its_callback_state(streams, tmp_path, hook, step, resumed_from):
    cfg = config(max_steps=12, save_every=4, keep_last=1)
    full_length = CodeLength()
    full_model, full = run(streams, tmp_path / "full", cfg, callbacks=[full_length])

    interrupted = CodeLength()
    with pytest.raises(KeyboardInterrupt):
        run(streams, tmp_path / "resumed", cfg, callbacks=[interrupted, Crash(hook, step)])
    assert interrupted.batches == step  # it counted past the save point before the kill
    resumed_length = CodeLength()
    model, result = run(streams, tmp_path / "resumed", cfg, callbacks=[resumed_length])

    assert result.resumed_from_step == resumed_from
    assert resumed_length.batches == 12 and torch.equal(resumed_length.bits, full_length.bits)
    assert result.curve == full.curve
    for name, tensor in full_model.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name]), name
    saved = torch.load(tmp_path / "resumed" / "last" / STATE_FILE, weights_only=True)["callbacks"]
    assert saved["code_length"]["batches"] == 12 and torch.equal(saved["code_length"]["bits"], full_length.bits)


def test_resume_refuses_when_the_stateful_callbacks_changed(streams, tmp_path):
    run(streams, tmp_path, config(max_steps=3), callbacks=[CodeLength()])
    with pytest.raises(StageError, match=r"stateful callbacks \(saved: \['code_length'\], now: \[\]\)"):
        run(streams, tmp_path, config(max_steps=3))


def test_two_stateful_callbacks_need_distinct_names(streams, tmp_path):
    with pytest.raises(ValueError, match="'code_length'"):
        run(streams, tmp_path, config(max_steps=1), callbacks=[CodeLength(), CodeLength()])
    second = CodeLength()
    second.name = "code_length_2"
    run(streams, tmp_path, config(max_steps=1), callbacks=[CodeLength(), second])


class NumpyState(Callback):
    def state_dict(self):
        return {"counts": np.zeros(3)}


def test_state_that_weights_only_cannot_load_is_refused_at_the_first_save(streams, tmp_path):
    with pytest.raises(TypeError, match=r"the state of callback 'NumpyState'\['counts'\] is a ndarray"):
        run(streams, tmp_path / "numpy", config(max_steps=2), callbacks=[NumpyState()])
    assert not list((tmp_path / "numpy").glob(".tmp-*"))  # refused before anything was written
