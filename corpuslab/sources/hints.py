"""How a source's messages name the settings a user can change.

The sources are configured by an experiment's `dataset.*` keys, and their messages say so ("check text_field",
"set the source's encoding"). A tool that drives a source from its own command line (`corpuslab dedup`) names
its flags instead, for the duration of a `naming` block; outside one, every message keeps the config's words.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

# setting -> how a message names it: text_field, id_field, category_field; encoding_hint, csv_header_hint (whole phrases)
DEFAULT_NAMES: dict[str, str] = {
    "text_field": "text_field",
    "id_field": "id_field",
    "category_field": "category_field",
    "encoding_hint": "set the source's encoding, e.g. 'utf-8,cp1252'",
    "csv_header_hint": "if the file has no header row, set csv_column_names",
}
_NAMES: ContextVar[Mapping[str, str]] = ContextVar("corpuslab_setting_names", default=DEFAULT_NAMES)


def name(setting: str) -> str:
    """How messages name `setting` here (the config key outside a `naming` block; "" where there is no such setting)."""
    names = _NAMES.get()
    return names.get(setting, DEFAULT_NAMES.get(setting, setting))


@contextmanager
def naming(names: Mapping[str, str]) -> Iterator[None]:
    """Messages built inside the block name the settings as `names` does (others as the config does)."""
    token = _NAMES.set({**DEFAULT_NAMES, **names})
    try:
        yield
    finally:
        _NAMES.reset(token)
