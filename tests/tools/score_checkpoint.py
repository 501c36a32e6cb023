"""The tiny saved checkpoint and task files the `corpuslab score` tests run on."""

import json
from pathlib import Path

from corpuslab.tokens.tokenizer import TokenizerConfig, build_tokenizer
from corpuslab.training.model import ModelConfig, build_model


def write_score_checkpoint(root: Path, tasks: dict[str, list[dict]], seed: int):
    """One JSON Lines file per task under `root` and a 1-layer model with a BPE tokenizer trained on their
    documents, saved in `root/model`; returns (model folder, {task: file}, model, tokenizer)."""
    files = {}
    for name, docs in tasks.items():
        files[name] = root / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps(d) + "\n" for d in docs))
    texts = [json.dumps(d) for docs in tasks.values() for d in docs]
    tokenizer = build_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300, min_frequency=1), texts)
    model = build_model(ModelConfig("tiny", n_layer=1, n_head=2, n_embd=32, context=64), len(tokenizer), seed=seed,
                        eos_id=tokenizer.eos_token_id)
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    return root / "model", files, model, tokenizer
