"""`corpuslab push DIR --repo OWNER/NAME`: upload an exported dataset (`corpuslab export`) or a trained model
(a run's `final/`) to the Hugging Face Hub with huggingface_hub: create the repo if needed, then one commit.

The token comes from HF_TOKEN (or huggingface_hub's own login); it is never printed or logged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from corpuslab.errors import ConfigError, CorpuslabError, InputError


def kind_of(folder: Path) -> str:
    if (folder / "config.json").exists():
        return "model"
    if (folder / "README.md").exists() and (folder / "data").is_dir():
        return "dataset"
    raise InputError(str(folder), "neither a model folder (config.json, as in a run's final/) nor a dataset folder "
                     "(README.md and data/, as `corpuslab export` writes)")


def push(folder: str | Path, repo: str, repo_type: str | None = None, private: bool = False, endpoint: str | None = None,
         message: str | None = None) -> dict[str, Any]:
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(str(folder), "not a folder to push")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ConfigError("--repo", repo, "a repository id OWNER/NAME")
    repo_type = repo_type or kind_of(folder)
    api = HfApi(endpoint=endpoint, token=os.environ.get("HF_TOKEN") or None)
    try:
        url = api.create_repo(repo, repo_type=repo_type, private=private, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type=repo_type,
                                   commit_message=message or f"corpuslab push of {folder.name}")
    except Exception as err:  # network, auth, permissions: one paragraph without the token
        raise CorpuslabError(f"push to {repo} ({repo_type}) failed: {type(err).__name__}: {str(err).splitlines()[0][:300]}; "
                             "check HF_TOKEN and that you may write to the repository") from None
    return {"repo": repo, "type": repo_type, "url": str(url), "commit": getattr(commit, "oid", None)}
