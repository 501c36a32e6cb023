"""corpuslab: does this training data make a better model?

The Python API (`corpuslab.load_config`, `corpuslab.run`, `corpuslab.evaluate`) lives in `corpuslab.api`;
it is imported on first use, so `import corpuslab` (and `corpuslab --help`) stays light.
"""

__version__ = "0.1.0"
__all__ = ["load_config", "run", "evaluate", "open_experiment"]


def __getattr__(name: str):
    if name in __all__:
        from corpuslab import api

        return getattr(api, name)
    raise AttributeError(f"module 'corpuslab' has no attribute {name!r}")
