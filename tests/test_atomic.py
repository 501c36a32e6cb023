"""Outputs written as one set: all replace the previous set together, or none does."""

import errno

import pytest

from corpuslab.atomic import file_set, write_text_atomic


def _old_set(folder):
    for name in ("report.json", "config.yaml", "groups.tsv"):
        (folder / name).write_text(f"old {name}")


def test_a_set_replaces_every_file_at_once(tmp_path):
    _old_set(tmp_path)
    with file_set(tmp_path) as files:
        write_text_atomic(files.path("report.json"), "new report")
        assert (tmp_path / "report.json").read_text() == "old report.json"  # nothing moves before the end
        write_text_atomic(files.path("config.yaml"), "new config")
        files.remove("groups.tsv")
    assert (tmp_path / "report.json").read_text() == "new report"
    assert (tmp_path / "config.yaml").read_text() == "new config"
    assert not (tmp_path / "groups.tsv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "report.json"]  # no staged leftovers


def test_a_failure_halfway_leaves_the_old_set_whole_and_names_the_real_file(tmp_path):
    _old_set(tmp_path)
    with pytest.raises(OSError) as failure, file_set(tmp_path) as files:
        write_text_atomic(files.path("report.json"), "new report")
        staged = files.path("config.yaml")
        raise OSError(errno.ENOSPC, "No space left on device", str(staged))
    assert failure.value.filename == str(tmp_path / "config.yaml")
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "report.json": "old report.json", "config.yaml": "old config.yaml", "groups.tsv": "old groups.tsv"}
