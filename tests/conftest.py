"""Fixtures shared across the test tree: a tiny experiment's overrides, single-threaded torch."""

import pytest
import torch

# A whole experiment in seconds: 150 short documents, a 1-layer 32-wide model, 12 steps.
TINY = [
    "experiment=tiny",
    "dataset.synthetic.num_docs=150",
    "dataset.synthetic.words_per_doc=40",
    "tokenizer.vocab_size=320",
    "model.n_layer=1",
    "model.n_head=2",
    "model.n_embd=32",
    "model.context=64",
    "training.chunk_len=32",
    "training.batch_size=8",
    "training.max_train_tokens=null",
    "training.max_steps=12",
    "training.warmup_steps=2",
    "training.eval_interval=6",
    "training.log_interval=6",
    "canaries.count=4",
    "canaries.num_candidates=20",
    "evaluation.max_tokens=3000",
    "curation.workers=2",
    "evaluation.tasks={synthetic_cloze: 8, synthetic_choice: 8}",
]


@pytest.fixture
def one_thread():
    """Single-threaded torch, so float reductions are in one order and exact comparisons hold."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def s3_endpoint():
    """An S3 server on loopback (moto), started once per test session; its URL."""
    import logging

    server_module = pytest.importorskip("moto.server")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    pytest.importorskip("s3fs")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch, tmp_path):
    """A fresh bucket on the loopback S3 server, with fake credentials in the environment (where s3fs and
    corpuslab look) and corpuslab's local cache in tmp_path. Yields (s3fs filesystem, bucket name)."""
    import uuid

    import s3fs

    for name, value in {"AWS_ENDPOINT_URL": s3_endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
                        "CORPUSLAB_CACHE_DIR": str(tmp_path / "local-cache")}.items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    bucket = f"corpuslab-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    yield fs, bucket
    s3fs.S3FileSystem.clear_instance_cache()
