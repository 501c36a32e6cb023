"""Training under torchrun: 2 CPU processes (gloo) draw the curve 1 process draws, and resume each other's saves."""

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from corpuslab.errors import ConfigError
from corpuslab.training import distributed
from corpuslab.training.callbacks import Callback
from corpuslab.training.model import build_model
from tests.training.toy import MODEL, VOCAB, config, run, write_streams


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank, world, port, root, overrides, crash_at):
    """One torchrun process, as torchrun would start it (its environment), training the toy model."""
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    from pathlib import Path

    root = Path(root)
    streams = write_streams(root / f"data-{rank}")
    callbacks = [Kill(crash_at)] if crash_at else []
    try:
        _, result = run(streams, root / "run", config(**overrides), callbacks=callbacks)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    (root / f"curve-{rank}.json").write_text(json.dumps(result.curve))


class Kill(Callback):
    """Stops every rank at the end of step `step` (mp.spawn treats a KeyboardInterrupt as a clean exit)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer):
        if trainer.step == self.step:
            raise RuntimeError(f"killed at step {self.step}")


def _torchrun(world, root, crash_at=None, **overrides):
    mp.spawn(_rank_main, args=(world, _free_port(), str(root), overrides, crash_at), nprocs=world, join=True)
    return json.loads((root / "curve-0.json").read_text())


def _assert_same_curve(got, expected):
    assert [e["step"] for e in got] == [e["step"] for e in expected]
    for key in ("loss", "grad_norm", "val_loss", "param_norm"):
        assert [e[key] is None for e in got] == [e[key] is None for e in expected], key
        pairs = [(e[key], x[key]) for e, x in zip(got, expected) if x[key] is not None]
        assert [a for a, _ in pairs] == pytest.approx([b for _, b in pairs], rel=1e-5, abs=1e-6), key


def test_two_processes_draw_the_single_process_curve_and_their_save_resumes_in_one(streams, tmp_path):
    _, single = run(streams, tmp_path / "single", config(save_every=6))
    # Two processes x 2 micro-batches of 2 windows: the same global batch of 8. Both stop at step 7, after
    # rank 0 saved step 6.
    with pytest.raises(Exception, match="killed at step 7"):
        _torchrun(2, tmp_path / "ddp", crash_at=7, save_every=6, micro_batch_size=2)
    run_dir = tmp_path / "ddp" / "run"
    assert (run_dir / "step-6" / "model.safetensors").exists() and not (run_dir / "final").exists()
    _, resumed = run(streams, run_dir, config(save_every=6))  # one process, no micro-batches
    assert resumed.resumed_from_step == 6
    # Steps 1-6 of the curve were drawn by the two processes, 7-12 by one: all match the single-process run.
    _assert_same_curve(resumed.curve, single.curve)


def test_a_world_size_that_does_not_divide_the_batch_is_refused(streams, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ConfigError, match=r"training\.batch_size.*world size \(3 processes.*\[1, 2, 4, 8\]"):
        run(streams, tmp_path, config(batch_size=8))
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match=r"training\.micro_batch_size.*4 windows each of the 2 processes"):
        distributed.check_batch(8, 3)
    assert distributed.check_batch(8, 2) == (4, 2)


def test_micro_batches_accumulate_to_the_full_batch(streams, tmp_path, one_thread):
    _, whole = run(streams, tmp_path / "whole", config())
    _, accumulated = run(streams, tmp_path / "micro", config(micro_batch_size=2))
    _assert_same_curve(accumulated.curve, whole.curve)


def test_compiled_forward_trains_like_the_eager_one(streams, tmp_path, monkeypatch):
    """training.compile goes through torch.compile (here its aot_eager backend: no C++ toolchain needed)."""
    compiled = []
    original = torch.compile

    def compile_for_test(fn, **kwargs):
        compiled.append(fn.__name__)
        return original(fn, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", compile_for_test)
    _, eager = run(streams, tmp_path / "eager", config(max_steps=4))
    _, result = run(streams, tmp_path / "compiled", config(max_steps=4, compile=True))
    assert compiled == ["next_token_loss"]
    _assert_same_curve(result.curve, eager.curve)


def test_fused_adamw_is_asked_for_on_cuda_only(streams, tmp_path):
    from corpuslab.training.trainer import Trainer

    train_stream, _ = streams
    trainer = Trainer(build_model(MODEL, VOCAB, seed=0), train_stream, train_stream.windows(16), None, None, config(),
                      tmp_path, log=lambda line: None)
    assert trainer.optimizer.defaults["fused"] is False
    assert trainer.model.config._attn_implementation == "sdpa"


class PoisonAt(Callback):
    """Turns the loss of step `step` into NaN (a bad batch, as far as the trainer knows)."""

    def __init__(self, step):
        self.step = step

    def loss(self, trainer, loss):
        return loss * float("nan") if trainer.step + 1 == self.step else loss


def test_deferred_checks_take_no_host_sync_yet_stop_at_the_bad_step(streams, tmp_path, monkeypatch, one_thread):
    """The CUDA path (fused AdamW, the loss and norm read a step late), taken on the CPU."""
    from corpuslab.errors import StageError
    from corpuslab.training import trainer as trainer_module

    _, immediate = run(streams, tmp_path / "immediate", config())
    monkeypatch.setattr(trainer_module, "FUSED_ON_CPU", True)
    _, deferred = run(streams, tmp_path / "deferred", config())
    _assert_same_curve(deferred.curve, immediate.curve)
    model = build_model(MODEL, VOCAB, seed=0)
    with pytest.raises(StageError, match="non-finite gradient norm at step 3 "):
        run(streams, tmp_path / "poisoned", config(), model=model, callbacks=[PoisonAt(3)])
    # The device skipped the bad update although it was only read after the optimizer step.
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    saved = json.loads((tmp_path / "poisoned" / "nonfinite-step-3" / "diagnostics.json").read_text())
    assert saved["non_finite_parameters"] == []


def test_a_follower_rank_builds_nothing_but_waits_for_the_manifest_and_trains(tmp_path, monkeypatch):
    import threading

    from corpuslab.artifacts import MANIFEST, StageRunner

    monkeypatch.setattr(distributed, "POLL_SECONDS", 0.05)
    leader, follower = StageRunner(tmp_path, lambda line: None), distributed.FollowerStageRunner(tmp_path, lambda line: None)
    built = []
    tokens = leader.stage("tokens", "key")
    threading.Timer(0.3, lambda: leader.run(tokens, lambda work: {"made": "by rank 0"})).start()
    assert follower.run(tokens, lambda work: built.append("tokens") or {})["made"] == "by rank 0"
    train = leader.stage("train", "key")
    assert follower.run(train, lambda work: built.append(work) or {}, resumable=True) == {}
    assert built == [train.partial_path] and not (train.path / MANIFEST).exists()  # rank 0 writes the manifest
