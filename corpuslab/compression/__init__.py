"""Compression experiments (the compressing-Wikipedia seed; ALGORITHMS.md section 3).

How well does a small byte-level transformer compress the leading N bytes of a corpus, counting the
model's own size? The pieces are ordinary corpuslab plug-ins:

    data.py         the byte-level data: leading N bytes, fixed chunks, vocabulary 256, never shuffled
    procedures.py   training procedures vanilla / rl1 / drr / pmmp (prelude, main, fine-tuning phases),
                    the phased chunk sampler, TAMADE pruning, the online code length
    metrics.py      bits per byte, model bytes, non-zero parameters, description length, and the
                    gzip / bzip2 / xz / zstd baselines on the same bytes
    runner.py       one config -> bytes stage -> per run: train, evaluate -> runs.tsv, results.json, report
    report.py       the report section (plots) and the HTML page
    packaged.py     a source of text shipped with the package (tiny Shakespeare's opening)

Run it with `python -m corpuslab.compression configs/compression.yaml [key=value ...]`.
"""

# Listing `corpuslab.compression` under `plugins:` registers the procedures and the packaged source for any
# corpuslab experiment.
from corpuslab.compression import packaged, procedures  # noqa: E402,F401
