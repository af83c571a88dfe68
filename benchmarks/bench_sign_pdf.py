"""Bulk PAdES B-B signing throughput against pyHanko, on a real SoftHSM token.

    python benchmarks/bench_sign_pdf.py            # full: 1000 files, 3 runs
    python benchmarks/bench_sign_pdf.py --quick    # smoke: 40 files, 1 run

Baselines, measured in the same run on the same files and token key
(SoftHSM RSA-2048), interleaved so machine noise hits all alike:
  naive    one Python process looping over pyHanko's own API (sign_pdf with
           pyHanko's PKCS11Signer, one session), writing each output
  cli      the pyHanko CLI (`pyhanko sign addsig pkcs11`) once per file, on
           a few files in each run (start-up dominates it anyway), each run's
           files its own
signkit runs the real command with all its bookkeeping on: durable atomic
writes, the audit log, the JSON report. A second part signs N documents
with 150 ms added to every token signature (a benchmark-only wrapper around
the real token) and compares the wall time, start-up included, with
N x 150 ms. Prints medians and ratios.
Before the timed runs, signkit and the naive loop each sign a few files
untimed, so that no timed run pays for filling the byte-code caches.
Each timed run writes into a directory of its own, and nothing is deleted
before the end: on ext4 without a journal, creating a file soon after many
were deleted passes over every inode freed in the last minute (five while
its inode table block is not yet written back), one lookup each, so a run
just after deleting the previous outputs paid for that deletion (whichever
tool it was).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "fixtures" / "samples" / "decision.pdf"
BIN = Path(sys.executable).parent
TOKEN, KEY = "signkit-test-a", "signer-rsa2048"
WARM_FILES = 20
"""Files in the untimed warm-up run of each tool."""


def build_token(base: Path) -> tuple[dict[str, str], str, str]:
    subprocess.run(
        [
            sys.executable,
            str(REPO / "softhsm" / "init_tokens.py"),
            "--dir",
            str(base / "hsm"),
            "--tokens",
            TOKEN,
        ],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(REPO / "softhsm"))
    import init_tokens

    layout = init_tokens.load_layout()
    env = {**os.environ, "SOFTHSM2_CONF": str(base / "hsm" / "softhsm2.conf")}
    env.pop("SIGNKIT_PIN", None)
    # Byte-code caches as an installed signkit has them (the warm-up run fills them).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env, init_tokens.find_module(None), layout.user_pin


def cli_command(module: str, source: Path, target: Path) -> list[str]:
    """The pyHanko CLI signing ``source`` into ``target`` with the token's key."""
    return [
        str(BIN / "pyhanko"),
        "sign",
        "addsig",
        "--field",
        "Signature1",
        "pkcs11",
        "--lib",
        module,
        "--token-label",
        TOKEN,
        "--key-label",
        KEY,
        "--cert-label",
        KEY,
        str(source),
        str(target),
    ]


def make_inputs(directory: Path, n: int) -> None:
    directory.mkdir(parents=True)
    data = SAMPLE.read_bytes()
    for i in range(n):
        (directory / f"doc{i:05d}.pdf").write_bytes(data)


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(
            f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}"
        )
    return elapsed


NAIVE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.sign.pkcs11 import PKCS11Signer, open_pkcs11_session
    src, dst, module, token, key, pin = sys.argv[1:]
    session = open_pkcs11_session(module, token_criteria=TokenCriteria(label=token), user_pin=pin)
    signer = PKCS11Signer(session, cert_label=key, key_label=key)
    meta = signers.PdfSignatureMetadata(field_name="Signature1", md_algorithm="sha256",
                                        subfilter=fields.SigSeedSubFilter.PADES)
    out_dir = Path(dst)
    for path in sorted(Path(src).glob("*.pdf")):
        with path.open("rb") as fh, (out_dir / path.name).open("wb") as out:
            signers.sign_pdf(IncrementalPdfFileWriter(fh), meta, signer=signer, output=out)
    session.close()
    """
)

# The slow token: the real `signkit sign pdf` CLI (start-up, report, audit,
# exit included) with a benchmark-only wrapper that adds the latency before
# every real C_Sign on SoftHSM.
SLOW = textwrap.dedent(
    """
    import dataclasses, sys, time
    latency = float(sys.argv.pop(1))
    import signkit.cli
    signkit.cli._prestart_workers(sys.argv[1:])  # first thing, as the entry point does
    from signkit.startup import imports_without_gc
    with imports_without_gc():  # as the CLI imports it
        import signkit.jobs.signing as job
    original = job.sign_documents
    def slow(sign):
        def wrapped(data):
            time.sleep(latency)
            return sign(data)
        return wrapped
    def patched(spec, **kw):
        return original(dataclasses.replace(spec, sign_hook=slow), **kw)
    job.sign_documents = patched
    from signkit.cli import main
    sys.argv = ["signkit", *sys.argv[1:]]
    main()
    """
)


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when piped to a file
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--cli-sample", type=int, default=7, help="files the pyHanko CLI signs in each run"
    )
    parser.add_argument("--slow-n", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.150)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    parser.add_argument(
        "--part", choices=("all", "throughput", "slow"), default="all", help="what to measure"
    )
    args = parser.parse_args()
    if args.quick:
        args.files, args.runs, args.cli_sample, args.slow_n = 40, 1, 3, 20
    if min(args.files, args.runs, args.cli_sample, args.slow_n) < 1 or args.latency <= 0:
        parser.error("--files, --runs, --cli-sample, --slow-n and --latency must be positive")
    if args.cli_sample * args.runs > args.files:
        parser.error("--cli-sample x --runs must not exceed --files")
    base = Path(tempfile.mkdtemp(prefix="signkit-bench-"))
    try:
        env, module, pin = build_token(base)
        if args.part in ("all", "throughput"):
            make_inputs(base / "in", args.files)
            make_inputs(base / "in-warm", min(args.files, WARM_FILES))
            print(
                f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
                f"Python {platform.python_version()}, "
                f"{args.files} x {SAMPLE.stat().st_size // 1024} KB one-page PDFs, SoftHSM RSA-2048"
            )
            print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            signkit_t: list[float] = []
            naive_t: list[float] = []
            cli_rates: list[float] = []
            cli_env = {**env, "PYHANKO_PKCS11_PIN": pin}
            every = sorted((base / "in").glob("*.pdf"))
            # Run -1: an untimed warm-up of both on a few files (byte-code caches,
            # shared libraries), as the XML benchmark has.
            for run in range(-1, args.runs):
                inputs = base / ("in-warm" if run < 0 else "in")
                expected = len(list(inputs.glob("*.pdf")))
                for name in ("signkit", "naive", "cli"):
                    out = base / f"out-{name}-{run + 1}"
                    out.mkdir()
                    if name == "cli":
                        # One file in the warm-up; then each run's own slice.
                        first = max(run, 0) * args.cli_sample
                        sample = every[first : first + (1 if run < 0 else args.cli_sample)]
                        start = time.perf_counter()
                        for path in sample:
                            timed(cli_command(module, path, out / path.name), cli_env)
                        cli_rates.append(len(sample) / (time.perf_counter() - start))
                        count = len(list(out.glob("*.pdf")))
                        if count != len(sample):
                            sys.exit(f"cli: {count} outputs for {len(sample)} inputs")
                        continue
                    if name == "signkit":
                        cmd = [
                            str(BIN / "signkit"),
                            "sign",
                            "pdf",
                            str(inputs),
                            "--output-dir",
                            str(out),
                            "--module",
                            module,
                            "--token-label",
                            TOKEN,
                            "--key-label",
                            KEY,
                            "--revocation",
                            "off",
                            "--audit-log",
                            str(base / "audit.jsonl"),
                            "--report",
                            str(base / "report.json"),
                            "-q",
                        ]
                        signkit_t.append(timed(cmd, {**env, "SIGNKIT_PIN": pin}))
                    else:
                        cmd = [
                            sys.executable,
                            "-c",
                            NAIVE,
                            str(inputs),
                            str(out),
                            module,
                            TOKEN,
                            KEY,
                            pin,
                        ]
                        naive_t.append(timed(cmd, env))
                    count = len(list(out.glob("*.pdf")))
                    if count != expected:
                        sys.exit(f"{name}: {count} outputs for {expected} inputs")
                if run < 0:
                    signkit_t.clear()
                    naive_t.clear()
                    cli_rates.clear()
                    continue
                print(
                    f"run {run + 1}: signkit {signkit_t[-1]:.2f} s, "
                    f"naive pyHanko loop {naive_t[-1]:.2f} s, "
                    f"pyHanko CLI {cli_rates[-1]:.2f} files/s"
                )
            cli_rate = statistics.median(cli_rates)
            k_rate = args.files / statistics.median(signkit_t)
            n_rate = args.files / statistics.median(naive_t)
            print(f"signkit           {k_rate:8.1f} files/s  (median of {args.runs})")
            print(f"naive pyHanko     {n_rate:8.1f} files/s  (median of {args.runs})")
            print(
                f"pyHanko CLI       {cli_rate:8.2f} files/s  "
                f"(once per file, {args.cli_sample} files a run, median of {args.runs})"
            )
            print(f"ratio vs naive loop: x{k_rate / n_rate:.1f}  (goal >= 15)")
            print(f"ratio vs CLI:        x{k_rate / cli_rate:.0f}  (goal >= 300)")
            print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

        if args.part in ("all", "slow"):
            slow_in = base / "slow-in"
            make_inputs(slow_in, args.slow_n)
            walls = []
            for _ in range(args.runs):
                out = base / "slow-out"
                shutil.rmtree(out, ignore_errors=True)
                state = base / "slow-state"
                state.mkdir(exist_ok=True)
                walls.append(
                    timed(
                        [
                            sys.executable,
                            "-c",
                            SLOW,
                            str(args.latency),
                            "sign",
                            "pdf",
                            str(slow_in),
                            "--output-dir",
                            str(out),
                            "--token-label",
                            TOKEN,
                            "--key-label",
                            KEY,
                            "--revocation",
                            "off",
                            "--audit-log",
                            str(state / "audit.jsonl"),
                            "--quiet",
                        ],
                        {**env, "SIGNKIT_MODULE": module, "SIGNKIT_PIN": pin},
                    )
                )
                count = len(list(out.glob("*.pdf")))
                if count != args.slow_n:
                    sys.exit(f"slow token: {count} outputs for {args.slow_n} inputs")
            bound = args.slow_n * args.latency
            wall = statistics.median(walls)
            print(f"slow token runs: {', '.join(f'{w:.2f} s' for w in walls)}")
            print(
                f"slow token ({args.latency * 1000:.0f} ms/signature, N={args.slow_n}): "
                f"wall {wall:.2f} s "
                f"= {wall / bound:.3f} x N x latency (goal <= 1.05), start-up included"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
