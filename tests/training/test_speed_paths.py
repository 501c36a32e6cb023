"""What makes a training step cheaper must not change what it computes: the step's one host sync (the
loss read with the gradient norm) and the reused host memory on the CPU."""

import resource

import pytest
import torch

from corpuslab.errors import StageError
from corpuslab.training import allocator
from corpuslab.training.callbacks import Callback
from corpuslab.training.model import build_model
from tests.training.toy import MODEL, VOCAB, config, run

GLIBC = allocator._glibc() is not None


class Listener(Callback):
    """Reads each batch's loss before backward: the trainer then syncs twice per step."""

    def __init__(self):
        self.losses = []

    def on_batch_loss(self, trainer, loss, tokens):
        self.losses.append(loss)


def _numbers(result):
    return [(e["step"], e["loss"], e["grad_norm"], e["val_loss"]) for e in result.curve]


def test_one_sync_and_two_sync_steps_train_identically(streams, tmp_path):
    cfg = config(log_interval=1)
    _, one_sync = run(streams, tmp_path / "one", cfg)
    listener = Listener()
    _, two_syncs = run(streams, tmp_path / "two", cfg, callbacks=[listener])
    assert _numbers(one_sync) == _numbers(two_syncs)
    assert listener.losses == [e["loss"] for e in two_syncs.curve]  # log_interval=1: one entry per step


def test_a_listener_never_sees_a_non_finite_loss(streams, tmp_path):
    model = build_model(MODEL, VOCAB, seed=0)
    with torch.no_grad():
        model.transformer.ln_f.weight.fill_(float("nan"))
    listener = Listener()
    with pytest.raises(StageError, match="non-finite loss at step 1 "):
        run(streams, tmp_path, config(), model=model, callbacks=[listener])
    assert listener.losses == []


def test_training_numbers_do_not_depend_on_the_allocator_setting(streams, tmp_path, monkeypatch):
    _, reused = run(streams, tmp_path / "reused", config())
    monkeypatch.setattr("corpuslab.training.trainer.reuse_freed_memory",
                        lambda enabled: allocator.reuse_freed_memory(False))
    _, mapped = run(streams, tmp_path / "mapped", config())
    assert _numbers(reused) == _numbers(mapped)


def _page_faults(allocations: int) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(allocations):
        block = torch.ones(16 * 2**20)  # 64 MiB, every page written: above glibc's largest mmap threshold
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not GLIBC, reason="the setting exists for glibc's malloc only")
def test_reused_memory_is_not_faulted_in_again():
    mapped = _page_faults(6)  # every block mapped and zero-filled afresh: ~16k faults each
    with allocator.reuse_freed_memory() as active:
        assert active
        reused = _page_faults(6)  # the first block's pages, reused by the next five
    assert reused < mapped / 2


@pytest.mark.skipif(not GLIBC, reason="the setting exists for glibc's malloc only")
def test_reuse_freed_memory_nests_and_restores():
    with allocator.reuse_freed_memory() as outer:
        with allocator.reuse_freed_memory() as inner:
            assert outer and inner and allocator._depth == 2
        assert allocator._depth == 1
    assert allocator._depth == 0
    with allocator.reuse_freed_memory(enabled=False) as active:
        assert not active and allocator._depth == 0
