"""Reaching the Hugging Face Hub: asked once per process, so an offline machine fails (or uses its cache) at once.

huggingface_hub retries every request five times with backoff when the Hub cannot be reached: about 30 s
of warnings per call, and a run makes several (dataset, tokenizer, checkpoint). `hub_reachable` asks the
Hub's host once; when it does not answer, calls go straight to the local cache, as under HF_HUB_OFFLINE=1,
and the log says so in one line.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import urllib.parse
from collections.abc import Iterator

logger = logging.getLogger("corpuslab")

_HUB_REACHABLE: dict[str, bool] = {}


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub's host answers a TCP connection, asked once per process. Without this, an offline
    machine sits through huggingface_hub's five retries (about 30 s of warnings) on every call."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urllib.parse.urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    if host not in _HUB_REACHABLE:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            _HUB_REACHABLE[host] = True
        except OSError as err:
            _HUB_REACHABLE[host] = False
            logger.warning("the Hugging Face Hub (%s) is not reachable (%s): using the local cache only, as with "
                           "HF_HUB_OFFLINE=1", host, err.strerror or type(err).__name__)
    return _HUB_REACHABLE[host]


@contextlib.contextmanager
def offline_unless_reachable() -> Iterator[bool]:
    """Run Hub calls (`datasets`, `transformers`' from_pretrained) in offline mode when the Hub cannot be reached:
    no request, so no retries, even from lookups that ignore `local_files_only` (transformers' adapter_config.json
    probe); yields whether it is offline."""
    from huggingface_hub import constants

    if hub_reachable():
        yield False
        return
    try:
        import datasets  # its own copy of the flag, read at import
    except ImportError:
        datasets = None
    saved = (datasets.config.HF_HUB_OFFLINE if datasets else None, constants.HF_HUB_OFFLINE)
    if datasets:
        datasets.config.HF_HUB_OFFLINE = True
    constants.HF_HUB_OFFLINE = True
    try:
        yield True
    finally:
        if datasets:
            datasets.config.HF_HUB_OFFLINE = saved[0]
        constants.HF_HUB_OFFLINE = saved[1]
