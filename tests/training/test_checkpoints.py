"""Checkpoints under failure: a full disk while saving, a damaged trainer state when resuming."""

import errno
import os
import pickle

import pytest
import torch
import transformers.modeling_utils
from safetensors import SafetensorError

from corpuslab.errors import StageError
from corpuslab.training.trainer import STATE_FILE
from tests.training.toy import config, run

SAVES = dict(max_steps=12, save_every=4, keep_last=2)


def _failing_after(calls: int, error: Exception, real):
    """`real`, except that every call after the first `calls` raises `error` (the disk fills up)."""
    count = {"n": 0}

    def writer(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise error
        return real(*args, **kwargs)

    return writer


def _leftovers(out_dir):
    return sorted(p.name for p in out_dir.iterdir() if p.name.startswith(".tmp-") or p.name.endswith(".old"))


@pytest.mark.parametrize("patch, error", [
    ("state", RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing "
                           "file data/3: file write failed")),
    ("weights", SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")),
    ("weights", OSError(errno.ENOSPC, "No space left on device")),
])
def test_a_full_disk_while_saving_stops_with_a_clear_error_and_the_last_save_intact(
        streams, tmp_path, monkeypatch, patch, error):
    # The 2nd state write is last/ at step 8; the 2nd weights write is best/ at step 6. Either way the
    # save at step 4 is the last complete one.
    if patch == "state":
        monkeypatch.setattr(torch, "save", _failing_after(1, error, torch.save))
    else:
        real = transformers.modeling_utils.safe_save_file
        monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", _failing_after(1, error, real))
    with pytest.raises(StageError) as failure:
        run(streams, tmp_path, config(**SAVES))
    message = str(failure.value)
    assert f"could not write the checkpoint {tmp_path}{os.sep}" in message
    assert "Free disk space there and rerun" in message
    assert "(the disk is full)" in message and "enforce fail" not in message  # said plainly, not torch's words
    assert "MiB are free in" in message
    assert _leftovers(tmp_path) == []  # nothing half-written
    assert torch.load(tmp_path / "last" / STATE_FILE, weights_only=True)["step"] == 4
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-4"]

    monkeypatch.undo()  # space freed: the rerun continues from step 4 and ends as an uninterrupted run would
    model, result = run(streams, tmp_path, config(**SAVES))
    full_model, full = run(streams, tmp_path / "full", config(**SAVES))
    assert result.resumed_from_step == 4 and result.curve == full.curve
    assert all(torch.equal(t, full_model.state_dict()[k]) for k, t in model.state_dict().items())


def test_a_full_disk_while_writing_the_final_checkpoint_leaves_no_final(streams, tmp_path, monkeypatch):
    real = transformers.modeling_utils.safe_save_file
    # max_steps=3 and no validation improvement saves: best (steps 3) is the 1st write, final the 2nd.
    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file",
                        _failing_after(1, OSError(errno.ENOSPC, "No space left on device"), real))
    with pytest.raises(StageError, match="could not write the checkpoint .*final"):
        run(streams, tmp_path, config(max_steps=3, eval_interval=3))
    assert not (tmp_path / "final").exists() and _leftovers(tmp_path) == []


def _finished_run(streams, out_dir):
    """A finished 12-step run with saves at 4, 8, 12: last/ and step-12/ (step 12), step-8/."""
    model, result = run(streams, out_dir, config(**SAVES))
    assert sorted(p.name for p in out_dir.glob("step-*")) == ["step-12", "step-8"]
    return model, result


class Hostile:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path):
    path.write_bytes(os.urandom(2048))


def _hostile(path):
    with open(path, "wb") as handle:  # a pickle that runs code when loaded without weights_only
        pickle.dump({"step": 12, "payload": Hostile()}, handle)


def _hostile_zip(path):
    torch.save({"step": 12, "payload": Hostile()}, path)


def _not_a_dict(path):
    torch.save(torch.zeros(3), path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's, about the hostile pickle
@pytest.mark.parametrize("damage", [_truncate, _garbage, _hostile, _hostile_zip, _not_a_dict])
def test_a_damaged_state_falls_back_to_the_newest_loadable_snapshot(streams, tmp_path, capsys, damage):
    full_model, full = _finished_run(streams, tmp_path)
    damage(tmp_path / "last" / STATE_FILE)
    damage(tmp_path / "step-12" / STATE_FILE)
    lines: list[str] = []
    model, result = run(streams, tmp_path, config(**SAVES), log=lines.append)
    assert "unpickled code ran" not in capsys.readouterr().out
    assert result.resumed_from_step == 8 and result.curve == full.curve
    assert all(torch.equal(t, full_model.state_dict()[k]) for k, t in model.state_dict().items())
    assert any(line.startswith("could not load the saved state in last: ") and "; step-12: " in line
               and line.endswith("using step-8 instead") for line in lines)
    assert torch.load(tmp_path / "last" / STATE_FILE, weights_only=True)["step"] == 12  # rewritten whole


def test_damaged_weights_fall_back_too(streams, tmp_path):
    _finished_run(streams, tmp_path)
    _truncate(tmp_path / "last" / "model.safetensors")
    lines: list[str] = []
    _, result = run(streams, tmp_path, config(**SAVES), log=lines.append)
    assert result.resumed_from_step == 12  # the snapshot of the same step: nothing to redo
    assert any("SafetensorError" in line and "using step-12 instead" in line for line in lines)


def test_the_copy_moved_aside_is_tried_before_the_snapshots(streams, tmp_path):
    _finished_run(streams, tmp_path)
    (tmp_path / "last").rename(tmp_path / "last.old")  # a crash between the two renames of a save...
    _garbage(tmp_path / "step-12" / STATE_FILE)  # ...and a damaged newest snapshot
    lines: list[str] = []
    _, result = run(streams, tmp_path, config(**SAVES), log=lines.append)
    assert result.resumed_from_step == 12 and f"resumed from {tmp_path / 'last.old'} at step 12/12" in lines


def test_when_no_state_loads_the_error_names_the_folder_and_the_fix(streams, tmp_path):
    _finished_run(streams, tmp_path)
    for folder in ("last", "step-12", "step-8"):
        _truncate(tmp_path / folder / STATE_FILE)
    with pytest.raises(StageError) as failure:
        run(streams, tmp_path, config(**SAVES))
    message = str(failure.value)
    assert f"cannot resume the run in {tmp_path}: none of its saved states loads" in message
    assert "(last: RuntimeError: " in message and "; step-12: " in message and "; step-8: " in message
    assert f"delete {tmp_path} or set training.resume=never" in message
    assert "\n" not in message
    _, fresh = run(streams, tmp_path, config(**{**SAVES, "resume": "never"}))
    assert fresh.resumed_from_step is None and fresh.steps == 12
