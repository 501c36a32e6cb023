"""Document sources: the built-in synthetic corpus, local files, Hugging Face datasets, and any source a
user registers (`corpuslab.sources.base`).

`open_source` gives every source the same shape: a stream of `Document`s, the count of records it
skipped and why, and an `identity` of what it read, which keys the ingest stage.
"""

from corpuslab.sources.base import Source, open_source, sources
from corpuslab.sources.hf import HFSource
from corpuslab.sources.identity import describe_changes, identity_fingerprint
from corpuslab.sources.local import LocalSource
from corpuslab.sources.synthetic import SyntheticSource

__all__ = ["HFSource", "LocalSource", "Source", "SyntheticSource", "describe_changes", "identity_fingerprint",
           "open_source", "sources"]
