"""Bulk verification throughput: `signkit verify` against a naive in-process pyHanko loop.

    python benchmarks/bench_verify.py               # full: 1,000 B-LT PDFs, one signer, 3 runs
    python benchmarks/bench_verify.py --signers 5   # the same from five signers
    python benchmarks/bench_verify.py --quick       # smoke: 20 PDFs, 1 run

The documents: PAdES B-LT signed by signkit with the test TSA and OCSP,
from one signer (a batch signed by one clerk: one chain and one set of
revocation answers, as the issue's target has it) or from up to five
(RSA-2048, EC P-256, two Vietnamese subjects, an RSA-3072 key on a second
token), so caches across files are not flattered by one signer. Both sides
verify offline with the embedded revocation data,
revocation required, difference analysis on, trusting only the test root,
and must find every signature PASSED:
  naive    one Python process looping over pyHanko's AdES API: per file the
           reader, the DSS, difference analysis, the validation with time
           (and, as signkit does, a retry as of the time-stamp when the
           embedded revocation data is no longer current)
  signkit  the real command, audit log and JSON report included
Both are timed as whole processes (start-up included), interleaved so
machine noise hits both alike. Prints medians and the ratio.

XML (unless --no-xml): the same number of e-invoices signed by signkit
(XMLDSig, RSA-2048), verified by `signkit verify` (one process, report and
audit log on) and by `xmlsec1 --verify` once per file against the same root.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "fixtures" / "samples" / "decision.pdf"
PKI = "http://127.0.0.1:9781/signkit-test"
SIGNERS = (
    ("signkit-test-a", "signer-rsa2048"),
    ("signkit-test-a", "signer-ec256"),
    ("signkit-test-a", "key-vn"),
    ("signkit-test-b", "leader-vn"),
    ("signkit-test-b", "signer-rsa3072"),
)

NAIVE = textwrap.dedent(
    """
    import asyncio, dataclasses, logging, sys
    from datetime import datetime
    from pathlib import Path
    logging.disable(logging.WARNING)
    from asn1crypto import x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.diff_analysis import DEFAULT_DIFF_POLICY
    from pyhanko.sign.validation import generic_cms
    from pyhanko.sign.validation.ades import _dss_to_local_knowledge, ades_with_time_validation
    from pyhanko.sign.validation.policy_decl import (
        RevinfoOnlineFetchingRule, RevocationInfoGatheringSpec, SignatureValidationSpec)
    from pyhanko.sign.validation.status import PdfSignatureStatus
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
    from pyhanko_certvalidator.policy_decl import (
        CertRevTrustPolicy, RevocationCheckingPolicy, RevocationCheckingRule)
    from pyhanko_certvalidator.registry import SimpleTrustManager
    src, root_path = sys.argv[1:]
    root = x509.Certificate.load(Path(root_path).read_bytes())
    rule = RevocationCheckingRule.CHECK_IF_DECLARED
    passed = 0
    files = sorted(Path(src).glob("*.pdf"))
    for path in files:
        with path.open("rb") as fh:
            reader = PdfFileReader(fh)
            knowledge = _dss_to_local_knowledge(reader=reader)
            spec = SignatureValidationSpec(
                CertValidationPolicySpec(
                    trust_manager=SimpleTrustManager.build(trust_roots=[root]),
                    revinfo_policy=CertRevTrustPolicy(RevocationCheckingPolicy(rule, rule)),
                ),
                revinfo_gathering_policy=RevocationInfoGatheringSpec(
                    online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY),
                local_knowledge=knowledge,
            )
            for sig in reader.embedded_regular_signatures:
                sig.compute_integrity_info(diff_policy=DEFAULT_DIFF_POLICY)
                def run(timing):
                    return asyncio.run(ades_with_time_validation(
                        sig.signed_data, spec, timing_info=timing,
                        raw_digest=sig.compute_digest(),
                        extra_status_kwargs=sig.summarise_integrity_info(),
                        status_cls=PdfSignatureStatus))
                result = run(None)
                if result.ades_subindic.status.name != "PASSED":
                    tst = next(generic_cms.extract_tst_data_iter(sig.signer_info, signed=False))
                    moment = tst["encap_content_info"]["content"].parsed["gen_time"].native
                    result = run(ValidationTimingInfo(moment, moment, True))
                ok = sig.summarise_integrity_info()["docmdp_ok"] is not False
                passed += result.ades_subindic.status.name == "PASSED" and ok
    assert passed == len(files), f"naive: {passed} of {len(files)} PASSED"
    """
)


def pki_up() -> bool:
    try:
        with urllib.request.urlopen(f"{PKI}/crls/interm-ca/latest.crl", timeout=3) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except OSError:
        return False


def build_tokens(base: Path) -> tuple[dict[str, str], str, str]:
    subprocess.run(
        [sys.executable, str(REPO / "softhsm" / "init_tokens.py"), "--dir", str(base / "hsm"),
         "--tokens", "signkit-test-a,signkit-test-b"],
        check=True, capture_output=True,
    )  # fmt: skip
    sys.path.insert(0, str(REPO / "softhsm"))
    import init_tokens

    layout = init_tokens.load_layout()
    env = {**os.environ, "SOFTHSM2_CONF": str(base / "hsm" / "softhsm2.conf")}
    env["PYTHONPATH"] = str(REPO / "src")
    env["XDG_STATE_HOME"] = str(base / "state")
    env.pop("SIGNKIT_PIN", None)
    return env, init_tokens.find_module(None), layout.user_pin


def signkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "signkit", *args]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(
            f"benchmark command failed ({proc.returncode}): {' '.join(cmd[:6])} ...\n"
            f"{proc.stderr[-2000:]}"
        )
    return elapsed, proc.stdout


def make_documents(
    base: Path, env: dict[str, str], module: str, pin: str, n: int, signers: int
) -> Path:
    """n B-LT PDFs, n/signers from each signer, in one directory."""
    root = base / "root.der"
    sys.path.insert(0, str(REPO / "tests"))
    from support.infra import pki_certificate

    root.write_bytes(pki_certificate("root-ca"))
    docs = base / "docs"
    docs.mkdir()
    per = n // signers
    for number, (token, key) in enumerate(SIGNERS[:signers]):
        src = base / f"in-{number}"
        src.mkdir()
        for i in range(per):
            shutil.copy(SAMPLE, src / f"s{number}-{i:04d}.pdf")
        timed(
            signkit("sign", "pdf", str(src), "--output-dir", str(docs), "--module", module,
                    "--token-label", token, "--key-label", key, "--level", "B-LT",
                    "--tsa", f"{PKI}/tsa/tsa", "--trust", str(root), "--revocation", "hard",
                    "--no-audit", "-q"),
            {**env, "SIGNKIT_PIN": pin},
        )  # fmt: skip
    return docs


def bench_xml(
    base: Path, env: dict[str, str], module: str, pin: str, args: argparse.Namespace
) -> None:
    """signkit verify of a folder of signed e-invoices against xmlsec1 --verify per file."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_sign_xml import document

    from support.infra import pki_certificate

    src, docs = base / "xml-in", base / "xml-docs"
    src.mkdir()
    for i in range(args.files):
        (src / f"inv{i:05d}.xml").write_bytes(document(i))
    timed(
        signkit("sign", "xml", str(src), "--output-dir", str(docs), "--module", module,
                "--token-label", SIGNERS[0][0], "--key-label", SIGNERS[0][1],
                "--revocation", "off", "--no-audit", "-q"),
        {**env, "SIGNKIT_PIN": pin},
    )  # fmt: skip
    root, interm = base / "root.der", base / "interm.der"
    interm.write_bytes(pki_certificate("interm-ca"))
    files = sorted(docs.glob("*.xml"))
    sample = files[: args.xmlsec_sample]
    ours: list[float] = []
    theirs: list[float] = []
    for run in range(args.runs):
        elapsed, out = timed(
            signkit("verify", str(docs), "--trust", str(root), "--offline",
                    "--revocation", "off", "--json", "--report", str(base / "xml-report.json"),
                    "--audit-log", str(base / "audit.jsonl"), "-q"),
            env,
        )  # fmt: skip
        verdicts = json.loads(out)["verdicts"]
        if verdicts["PASSED"] != len(files):
            sys.exit(f"signkit verify xml: {verdicts} for {len(files)} documents")
        ours.append(elapsed)
        start = time.perf_counter()
        for path in sample:
            timed(["xmlsec1", "--verify", "--trusted-der", str(root),
                   "--untrusted-der", str(interm), str(path)], env)  # fmt: skip
        theirs.append((time.perf_counter() - start) / len(sample))
        print(
            f"xml run {run + 1}: signkit verify {ours[-1]:.2f} s for {len(files)}, "
            f"xmlsec1 {theirs[-1] * 1000:.1f} ms per file"
        )
    k_rate = len(files) / statistics.median(ours)
    x_rate = 1 / statistics.median(theirs)
    print(f"signkit verify xml {k_rate:8.1f} files/s  (median of {args.runs})")
    print(f"xmlsec1 --verify   {x_rate:8.1f} files/s  (once per file, {len(sample)} files)")
    print(f"ratio: x{k_rate / x_rate:.1f}  (goal >= 15)")


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--signers", type=int, default=1, choices=range(1, len(SIGNERS) + 1))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-xml", action="store_true", help="PDF only")
    parser.add_argument("--no-pdf", action="store_true", help="XML only")
    parser.add_argument("--xmlsec-sample", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    if args.quick:
        args.files, args.runs, args.xmlsec_sample = 20, 1, 10
    base = Path(tempfile.mkdtemp(prefix="signkit-bench-verify-"))
    pki = None
    try:
        if not pki_up():
            pki = subprocess.Popen(
                [str(Path(sys.executable).parent / "certomancer"), "--config",
                 str(REPO / "fixtures" / "pki" / "certomancer.yml"), "animate", "--port", "9781",
                 "--no-web-ui"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + 30
            while not pki_up():
                if time.monotonic() > deadline:
                    sys.exit("the test PKI did not start on port 9781")
                time.sleep(0.3)
        env, module, pin = build_tokens(base)
        if args.no_pdf:
            sys.path.insert(0, str(REPO / "tests"))
            from support.infra import pki_certificate

            (base / "root.der").write_bytes(pki_certificate("root-ca"))
            print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            bench_xml(base, env, module, pin, args)
            print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            return 0
        start = time.perf_counter()
        docs = make_documents(base, env, module, pin, args.files, args.signers)
        count = len(list(docs.glob("*.pdf")))
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}; {count} B-LT PDFs from {args.signers} "
            f"signer(s) (signed in {time.perf_counter() - start:.0f} s)"
        )
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        root = base / "root.der"
        ours: list[float] = []
        naive: list[float] = []
        for run in range(args.runs):
            elapsed, out = timed(
                signkit("verify", str(docs), "--trust", str(root), "--offline",
                        "--revocation", "hard", "--json", "--report", str(base / "report.json"),
                        "--audit-log", str(base / "audit.jsonl"), "-q"),
                env,
            )  # fmt: skip
            verdicts = json.loads(out)["verdicts"]
            if verdicts["PASSED"] != count:
                sys.exit(f"signkit: {verdicts} for {count} documents")
            ours.append(elapsed)
            elapsed, _ = timed([sys.executable, "-c", NAIVE, str(docs), str(root)], env)
            naive.append(elapsed)
            print(f"run {run + 1}: signkit {ours[-1]:.2f} s, naive pyHanko loop {naive[-1]:.2f} s")
        k_rate = count / statistics.median(ours)
        n_rate = count / statistics.median(naive)
        print(f"signkit verify   {k_rate:8.1f} files/s  (median of {args.runs})")
        print(f"naive pyHanko    {n_rate:8.1f} files/s  (median of {args.runs})")
        print(f"ratio: x{k_rate / n_rate:.1f}  (goal >= 8)")
        if not args.no_xml:
            bench_xml(base, env, module, pin, args)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if pki is not None:
            pki.terminate()
            pki.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
