"""The ingest's check for repeated ids: a Python set of the ids against `SeenIds`, memory and CPU per id.

    python benchmarks/ingest_ids.py --ids 1000000

Each variant runs in a fresh process over the same generated documents (ids `data/part-NNNNN.jsonl:ROW`,
26 characters, as the `local` source names JSON lines) and prints the resident memory it added and its
CPU seconds, generating the documents included (the same cost in both).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

CHILD = """
import time
from corpuslab.documents import Document
from corpuslab.seen_ids import SeenIds

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

list(SeenIds().documents([Document("warm", "", {{}})]))  # load the compiled kernels before measuring
docs = (Document(f"data/part-{{i // 5000:05d}}.jsonl:{{i % 5000}}", "text", {{}}) for i in range({count}))
before, cpu = rss_mb(), time.process_time()
if "{variant}" == "set":
    seen, renamed, written = set(), 0, 0
    for doc in docs:
        if doc.id in seen:
            renamed += 1
        seen.add(doc.id)
        written += 1
else:
    seen = SeenIds()
    written = sum(1 for _ in seen.documents(docs))
print(f"{{rss_mb() - before:.0f}} {{time.process_time() - cpu:.2f}} {{written}}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2, help="alternate the variants this many times")
    args = parser.parse_args()
    for _ in range(args.repeats):
        for variant in ("set", "seen_ids"):
            started = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD.format(count=args.ids, variant=variant)], check=True,
                                 capture_output=True, text=True).stdout.split()
            mb, cpu, written = float(out[0]), float(out[1]), int(out[2])
            print(f"{variant:<9} {written:,} ids: +{mb:.0f} MB ({mb * 2**20 / written:.0f} bytes per id), {cpu:.2f} CPU-s "
                  f"({cpu / written * 1e6:.2f} us per id, generating the documents included), {time.perf_counter() - started:.1f} s wall")


if __name__ == "__main__":
    main()
