"""Command-line options of `corpuslab dedup` (kept apart from `dedup.py` so `--help` imports no numpy)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="files, folders (read recursively) or globs of .txt/.jsonl/.parquet/.csv (optionally .gz/.zst); "
                             "or fsspec URLs (s3://bucket/*.jsonl.gz); or hf:NAME for a Hugging Face dataset")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--recipe", choices=("exact", "near"), default="near",
                        help="exact: identical normalized text; near: exact, then MinHash LSH with every candidate verified (default)")
    parser.add_argument("--similarity", choices=("jaccard", "containment"), default="jaccard",
                        help="how candidates are verified: jaccard |A&B|/|A|B|, or containment |A&B|/|A| of the smaller "
                             "document A in B (a short text copied inside a longer one)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="similarity a verified pair reaches (default 0.85; --recipe near only)")
    parser.add_argument("--candidate-threshold", type=float, default=None,
                        help="Jaccard the LSH banding is tuned for (default: --threshold for jaccard, 0.2 for containment)")
    parser.add_argument("--num-perm", type=int, default=128, help="MinHash permutations (default 128)")
    parser.add_argument("--bands", type=int, default=None, help="LSH bands (with --rows; default derived from the threshold)")
    parser.add_argument("--rows", type=int, default=None, help="LSH rows per band")
    parser.add_argument("--ngram", type=int, default=5, help="shingle length in tokens (default 5)")
    parser.add_argument("--shingle", choices=("word", "char"), default="word", help="word or character shingles")
    parser.add_argument("--seed", type=int, default=1, help="MinHash seed")
    parser.add_argument("--keep", default="earliest", metavar="POLICY",
                        help="which copy of a cluster is kept: earliest (default), longest, max:FIELD (e.g. max:quality) "
                             "or min:FIELD (e.g. min:date; ISO dates sort as text)")
    parser.add_argument("--no-lowercase", action="store_true", help="compare case-sensitively")
    parser.add_argument("--strip-punctuation", action="store_true", help="ignore punctuation when comparing")
    parser.add_argument("--text-field", default="text", help="record field holding the text (default text)")
    parser.add_argument("--id-field", default=None, help="record field holding a unique id (default: <file>:<line>)")
    parser.add_argument("--fields", action="append", default=[], metavar="FIELD",
                        help="record field copied to the deduplicated output (repeatable)")
    parser.add_argument("--format", choices=("auto", "txt", "jsonl", "parquet", "csv"), default="auto",
                        help="input format (default: from the extension)")
    parser.add_argument("--encoding", default=None,
                        help="encoding of local text files without a byte order mark (default utf-8); e.g. cp1252, "
                             "or 'utf-8,cp1252' to decode a file as cp1252 where it is not valid UTF-8")
    parser.add_argument("--compression", choices=("none", "lz4", "snappy", "zstd", "gzip", "brotli"), default="none",
                        help="codec of a Parquet output (default none: the cheapest to write; the file is ~1.4x a snappy one)")
    parser.add_argument("--split", default="train", help="split of an hf:NAME dataset (default train)")
    parser.add_argument("--subset", default=None, help="config name of an hf:NAME dataset")
    parser.add_argument("--processes", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--max-docs", type=int, default=None, help="read at most this many documents")


def main(args: argparse.Namespace) -> int:
    from corpuslab.curation.dedup.config import NormalizeConfig
    from corpuslab.tools.dedup import DedupToolConfig, run_dedup

    cfg = DedupToolConfig(
        inputs=args.inputs, out=args.out, recipe=args.recipe, similarity=args.similarity, threshold=args.threshold,
        candidate_threshold=args.candidate_threshold, num_perm=args.num_perm, bands=args.bands, rows=args.rows,
        ngram=args.ngram, shingle=args.shingle, seed=args.seed, keep=args.keep,
        normalize=NormalizeConfig(lowercase=not args.no_lowercase, strip_punctuation=args.strip_punctuation),
        text_field=args.text_field, id_field=args.id_field, fields=args.fields, format=args.format,
        encoding=args.encoding, split=args.split, subset=args.subset, processes=args.processes, max_docs=args.max_docs,
        compression=args.compression,
    )
    run_dedup(cfg)
    return 0
