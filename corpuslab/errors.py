"""Errors that corpuslab reports to the user.

Every error names what was wrong (a config key, a file and line, a stage) and what was expected, so a
user can fix the input without reading a traceback.
"""

from __future__ import annotations


class CorpuslabError(Exception):
    """Base class: a problem the user can fix; the CLI prints it without a traceback."""


class ConfigError(CorpuslabError):
    """A config key has an unknown name, a wrong type or an impossible value."""

    def __init__(self, key: str, value: object, expected: str):
        self.key, self.value, self.expected = key, value, expected
        super().__init__(f"config key '{key}': got {value!r}, expected {expected}")


class InputError(CorpuslabError):
    """An input file is missing or holds something corpuslab cannot read."""

    def __init__(self, path: str, problem: str, line: int | None = None):
        self.path, self.problem, self.line = path, problem, line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


class StageError(CorpuslabError):
    """A pipeline stage could not finish (out of disk, out of memory, non-finite loss...)."""

    def __init__(self, stage: str, problem: str):
        self.stage, self.problem = stage, problem
        super().__init__(f"stage '{stage}': {problem}")
