"""`python -m corpuslab.compression CONFIG.yaml [CONFIG2.yaml ...] [key.path=value ...]`: run a compression experiment."""

from __future__ import annotations

import sys

from corpuslab.errors import CorpuslabError


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    paths = [a for a in args if "=" not in a]
    overrides = [a for a in args if "=" in a]
    try:
        from corpuslab.compression.runner import CompressionExperimentRunner, load_compression_config

        cfg = load_compression_config(paths, overrides)
        CompressionExperimentRunner(cfg).run()
    except CorpuslabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
