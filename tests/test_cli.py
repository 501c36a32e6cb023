import json

import pytest

from corpuslab.cli import STAGE_HELP, main


@pytest.mark.parametrize("command", sorted(STAGE_HELP))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert "key.path=value" in capsys.readouterr().out


def test_prefetch_goes_through_datasets_on_local_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": f"document {i}"}) + "\n" for i in range(5)))
    code = main(["prefetch", "dataset.source=hf", "dataset.hf.name=json", f"dataset.hf.data_files={data}",
                 "dataset.hf.streaming=false"])
    assert code == 0
    assert "5 rows" in capsys.readouterr().out


def test_prefetch_needs_an_hf_source(capsys):
    assert main(["prefetch"]) == 2
    assert "dataset.source" in capsys.readouterr().err
