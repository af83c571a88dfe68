"""This tree against an earlier commit, side by side in one run: no regression.

    python benchmarks/bench_against.py --base REV            # 5 runs per case
    python benchmarks/bench_against.py --base REV --quick    # smoke: 40 files, 1 run
    python benchmarks/bench_against.py --base REV --cases sign-xml --runs 11

Both trees run from their own sources (``git archive REV src``, catalogues
compiled if the tree keeps them as .po) on this checkout's virtualenv and the
same SoftHSM token, each through its own entry point (``signkit.cli.main``),
on the same inputs, interleaved run by run so machine noise hits both alike.
Every figure is a whole-process wall time; each case prints both medians and
the ratio this/base (over 1.05 is a regression of more than 5%):
  sign pdf     1,000 x 32 KB one-page PDFs, PAdES B-B, audit log and report on
  sign xml     1,000 x 4.6 KB e-invoices, XMLDSig, audit log and report on
  verify pdf   the 1,000 signed PDFs (this tree's outputs), offline, revocation off
  slow token   `sign pdf` with 150 ms added before each real signature, N = 100
               (the signature is wrapped where both trees call the token)
  --help       `signkit --help`, timed 10 times per run (its median is over
               10 x runs samples)
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_sign_xml import build_token  # noqa: E402
from bench_sign_xml import make_inputs as make_xml  # noqa: E402

SAMPLE = REPO / "fixtures" / "samples" / "decision.pdf"
TOKEN, KEY = "signkit-test-a", "signer-rsa2048"
HELP_REPEAT = 10

# Each tree's own entry point, as its console script runs it.
ENTRY = "import sys; sys.argv[0] = 'signkit'; from signkit.cli import main; sys.exit(main())"
# The slow token: 150 ms before every real C_Sign, wrapped around the PKCS#11
# key object's sign method, which both trees call.
SLOW = textwrap.dedent(
    """
    import sys, time
    latency = float(sys.argv.pop(1))
    import pkcs11.types
    original = pkcs11.types.SignMixin.sign
    def sign(self, *args, **kwargs):
        time.sleep(latency)
        return original(self, *args, **kwargs)
    pkcs11.types.SignMixin.sign = sign
    sys.argv[0] = 'signkit'
    from signkit.cli import main
    sys.exit(main())
    """
)


def source_tree(rev: str, into: Path) -> Path:
    """``src`` of ``rev``, its message catalogues compiled when it keeps .po files."""
    into.mkdir(parents=True)
    archive = into / "src.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    src = into / "src"
    locale = src / "signkit" / "locale"
    for po in locale.glob("*.po"):
        mo = locale / po.stem / "LC_MESSAGES" / "signkit.mo"
        if not mo.exists():
            from babel.messages.mofile import write_mo
            from babel.messages.pofile import read_po

            with po.open("rb") as fh:
                catalog = read_po(fh, locale=po.stem, domain="signkit")
            mo.parent.mkdir(parents=True, exist_ok=True)
            with mo.open("wb") as out:
                write_mo(out, catalog)
    return src


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:6])} ...: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--slow-n", type=int, default=100)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--cases", help="comma-separated: sign-pdf, sign-xml, verify-pdf, slow-token, help"
    )
    args = parser.parse_args()
    if args.quick:
        args.runs, args.files, args.slow_n = 1, 40, 10
    base = Path(tempfile.mkdtemp(prefix="signkit-bench-against-"))
    try:
        trees = {
            "base": source_tree(args.base, base / "base"),
            "this": source_tree("HEAD", base / "this"),
        }
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if dirty:
            print("note: src/ has uncommitted changes; 'this' is HEAD without them")
        env, module, pin = build_token(base)
        env = {**env, "SIGNKIT_MODULE": module, "SIGNKIT_PIN": pin}
        pdf_in = base / "pdf-in"
        pdf_in.mkdir()
        for i in range(args.files):
            shutil.copy(SAMPLE, pdf_in / f"doc{i:05d}.pdf")
        slow_in = base / "slow-in"
        slow_in.mkdir()
        for i in range(args.slow_n):
            shutil.copy(SAMPLE, slow_in / f"doc{i:05d}.pdf")
        make_xml(base / "xml-in", base / "xml-templates", args.files)
        key = ["--token-label", TOKEN, "--key-label", KEY, "--revocation", "off"]
        signed = base / "signed"  # this tree's PDFs, the verify input
        sys.path.insert(0, str(REPO / "tests"))
        from support.infra import pki_certificate

        root = base / "root.der"
        root.write_bytes(pki_certificate("root-ca"))

        def sign_cmd(kind: str, inputs: Path, name: str) -> Callable[[str], list[str]]:
            def cmd(out: str) -> list[str]:
                state = base / f"state-{name}"
                state.mkdir(exist_ok=True)
                return [
                    "sign", kind, str(inputs), "--output-dir", out, *key,
                    "--audit-log", str(state / "audit.jsonl"),
                    "--report", str(state / "report.json"), "-q",
                ]  # fmt: skip

            return cmd

        cases: dict[str, tuple[str, Callable[[str], list[str]], bool]] = {
            "sign pdf": (ENTRY, sign_cmd("pdf", pdf_in, "pdf"), True),
            "sign xml": (ENTRY, sign_cmd("xml", base / "xml-in", "xml"), True),
            "verify pdf": (
                ENTRY,
                lambda _out: [
                    "verify",
                    str(signed),
                    "--offline",
                    "--revocation",
                    "off",
                    "--trust",
                    str(root),
                ],
                False,
            ),
            "slow token": (SLOW, sign_cmd("pdf", slow_in, "slow"), True),
            "--help": (ENTRY, lambda _out: ["--help"], False),
        }
        if args.cases:
            wanted = {
                c.strip().replace("-", " ").replace("help", "--help") for c in args.cases.split(",")
            }
            unknown = wanted - set(cases)
            if unknown:
                sys.exit(f"unknown case(s): {', '.join(sorted(unknown))}")
            cases = {c: v for c, v in cases.items() if c in wanted}
        # The verify input: this tree's outputs, made once, untimed.
        subprocess.run(
            [sys.executable, "-c", ENTRY, *sign_cmd("pdf", pdf_in, "prep")(str(signed))],
            env={**env, "PYTHONPATH": str(trees["this"])},
            check=True,
            capture_output=True,
        )
        times: dict[str, dict[str, list[float]]] = {c: {t: [] for t in trees} for c in cases}
        for run in range(-1, args.runs):  # run -1: untimed warm-up (byte code, page cache)
            for case, (script, make, writes) in cases.items():
                if run < 0 and case == "slow token":
                    continue
                # A start-up of ~50 ms drowns in noise at five samples: it is
                # timed HELP_REPEAT times per run, alternating the trees.
                repeat = HELP_REPEAT if case == "--help" else 1
                for tree, src in [pair for _ in range(repeat) for pair in trees.items()]:
                    out = base / f"out-{tree}"
                    shutil.rmtree(out, ignore_errors=True)
                    if writes:
                        out.mkdir()
                    for state in base.glob("state-*"):
                        if state.name != "state-prep":
                            shutil.rmtree(state)
                    extra = [str(0.150)] if script is SLOW else []
                    cmd = [sys.executable, "-c", script, *extra, *make(str(out))]
                    wall = timed(cmd, {**env, "PYTHONPATH": str(src)})
                    if run >= 0:
                        times[case][tree].append(wall)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}; base {args.base}, {args.runs} runs, medians"
        )
        worst = 0.0
        for case, by_tree in times.items():
            b = statistics.median(by_tree["base"])
            t = statistics.median(by_tree["this"])
            worst = max(worst, t / b)
            print(
                f"  {case:<11} base {b:8.3f} s   this {t:8.3f} s   this/base {t / b:5.3f}"
                f"{'  REGRESSION' if t / b > 1.05 else ''}"
            )
        print(f"worst ratio {worst:.3f} (a regression is over 1.05)")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
