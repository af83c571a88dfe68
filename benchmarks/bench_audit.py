"""What the audit seals cost a batch: commits with and without a seal per commit.

    python benchmarks/bench_audit.py            # 1000 documents, 5 runs each

A signing batch writes two records per document (intent, result) and commits
them in groups (one fsync per group). This replays that pattern on a real
file, with seals off (the bare hash chain) and on (an Ed25519 seal line per
commit), interleaved, and prints medians and the ratio per group size.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

from signkit.audit.log import AuditLog, AuditSpec


def batch(path: Path, key: Path, docs: int, group: int, seal: bool) -> float:
    start = time.perf_counter()
    audit = AuditLog(path, AuditSpec(seal=seal, seal_key=key, anchor=path.with_suffix(".anc")))
    audit.add({"type": "run-start", "command": "sign pdf"})
    audit.commit()
    for n in range(docs):
        digest = hashlib.sha256(str(n).encode()).hexdigest()
        audit.add({"type": "document-intent", "input": f"in/{n}.pdf", "sha256_before": digest})
        audit.add({"type": "document-result", "input": f"in/{n}.pdf", "sha256_after": digest})
        if (n + 1) % group == 0:
            audit.commit()
    audit.add({"type": "run-end"})
    audit.close()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="signkit-bench-audit-") as tmp:
        base = Path(tmp)
        for group in (1, 8, 64):
            times: dict[bool, list[float]] = {False: [], True: []}
            for run in range(args.runs):
                for seal in (False, True):
                    path = base / f"g{group}-{seal}-{run}.jsonl"
                    times[seal].append(batch(path, base / "seal.key", args.docs, group, seal))
            off, on = statistics.median(times[False]), statistics.median(times[True])
            print(
                f"group {group:>2}: {args.docs} docs, chain only {off * 1000:7.1f} ms, "
                f"sealed {on * 1000:7.1f} ms (median of {args.runs}), x{on / off:.2f}, "
                f"{(on - off) / max(1, args.docs // group) * 1e6:.0f} us per commit"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
