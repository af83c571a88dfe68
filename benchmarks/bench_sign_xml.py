"""Bulk XML signing throughput against xmlsec1 and signxml, on a real SoftHSM token.

    python benchmarks/bench_sign_xml.py            # full: 1,000 files of ~5 KB, 3 runs
    python benchmarks/bench_sign_xml.py --quick    # smoke: 20 files, 1 run

1,000 files, as for PDF, so that start-up (about 0.5 s for signkit and for
signxml alike) does not dominate; xmlsec1 starts once per file whatever the
count.

Measured in the same run on the same files (interleaved so machine noise hits
all alike), every figure a whole-process wall time:
  xmlsec1   `xmlsec1 --sign` once per file with the test key as PEM (the
            per-file template with an empty Signature is made beforehand,
            untimed)
  signxml   one Python process: open the SoftHSM session (python-pkcs11, RSA-2048),
            then signxml's XMLSigner with a small key adapter whose sign()
            calls C_Sign, writing each output (no fsync, no report, no audit)
signkit runs the real command with all its bookkeeping on: durable atomic
writes (fsync, rename, directory sync), the audit log, the JSON report, both
CPUs. The signxml loop alone (after imports and login) is printed too, and
so is the token alone: as many C_Sign calls in one thread, nothing else,
the rate no signer of this token passes on one CPU.
Prints medians and ratios.
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
BIN = Path(sys.executable).parent
TOKEN, KEY = "signkit-test-a", "signer-rsa2048"
TEMPLATE = """<Signature xmlns="http://www.w3.org/2000/09/xmldsig#"><SignedInfo>\
<CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>\
<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>\
<Reference URI=""><Transforms>\
<Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/></Transforms>\
<DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/><DigestValue/></Reference>\
</SignedInfo><SignatureValue/><KeyInfo><X509Data/></KeyInfo></Signature>"""


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


def document(i: int) -> bytes:
    """A synthetic e-invoice of about 5 KB."""
    items = "".join(
        f"      <HHDVu><STT>{n}</STT><THHDVu>Hàng hóa thử nghiệm số {n}</THHDVu>"
        f"<DVTinh>Cái</DVTinh><SLuong>{n}</SLuong><DGia>15000</DGia>"
        f"<ThTien>{15000 * n}</ThTien><TSuat>10%</TSuat></HHDVu>\n"
        for n in range(1, 25)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<HDon>\n'
        f'  <DLHDon Id="DLHDon-{i:06d}">\n    <TTChung><SHDon>{i}</SHDon>'
        "<NLap>2026-03-12</NLap></TTChung>\n    <NDHDon>\n"
        "      <NBan><Ten>Công ty thử nghiệm</Ten><MST>0100000000-999</MST></NBan>\n"
        f"    <DSHHDVu>\n{items}    </DSHHDVu>\n    </NDHDon>\n  </DLHDon>\n</HDon>\n"
    ).encode()


def make_inputs(directory: Path, templates: Path, n: int) -> int:
    directory.mkdir(parents=True)
    templates.mkdir(parents=True)
    size = 0
    for i in range(n):
        data = document(i)
        size = len(data)
        (directory / f"hd{i:05d}.xml").write_bytes(data)
        end = data.rindex(b"</HDon>")
        (templates / f"hd{i:05d}.xml").write_bytes(data[:end] + TEMPLATE.encode() + data[end:])
    return size


def pem_key_and_cert(base: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(REPO / "tests"))
    from support.infra import pki_certificate

    cert = base / "signer.crt"
    der = base / "signer.der"
    der.write_bytes(pki_certificate(KEY))
    subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-in", str(der), "-out", str(cert)], check=True
    )
    return REPO / "fixtures" / "pki" / "keys" / f"{KEY}.key.pem", cert


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(
            f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}"
        )
    return elapsed, proc.stdout


SIGNXML = textwrap.dedent(
    """
    import sys, time
    t0 = time.perf_counter()
    from pathlib import Path
    import pkcs11
    from pkcs11 import Mechanism, ObjectClass
    from lxml import etree
    from signxml import XMLSigner, methods
    src, dst, module, token_label, key_label, pin, cert_pem = sys.argv[1:]

    class TokenKey:
        # The one thing signxml asks of an RSA key when a certificate is given.
        def __init__(self, key):
            self.key = key
        def sign(self, data, padding, algorithm):
            return self.key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)

    session = pkcs11.lib(module).get_token(token_label=token_label).open(user_pin=pin)
    key = TokenKey(session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label))
    cert = Path(cert_pem).read_text()
    signer = XMLSigner(method=methods.enveloped, signature_algorithm="rsa-sha256",
                       digest_algorithm="sha256",
                       c14n_algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315")
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    t1 = time.perf_counter()
    out = Path(dst)
    for path in sorted(Path(src).glob("*.xml")):
        root = etree.fromstring(path.read_bytes(), parser)
        signed = signer.sign(root, key=key, cert=cert)
        (out / path.name).write_bytes(etree.tostring(signed, xml_declaration=True,
                                                     encoding="UTF-8"))
    t2 = time.perf_counter()
    session.close()
    print(f"{t2 - t1:.6f}")
    """
)

# The token alone: as many signatures as there are files, one after the other
# in one thread, with the mechanism signkit uses on SoftHSM (hashing on the
# token) over a SignedInfo-sized message. The ceiling no signer of this token
# can pass on one CPU; signkit's rate is printed as a share of it.
TOKEN_ONLY = textwrap.dedent(
    """
    import sys, time
    import pkcs11
    from pkcs11 import Mechanism, ObjectClass
    module, token_label, key_label, pin, count = sys.argv[1:]
    session = pkcs11.lib(module).get_token(token_label=token_label).open(user_pin=pin)
    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=key_label)
    message = bytes(range(256)) * 4
    start = time.perf_counter()
    for _ in range(int(count)):
        key.sign(message, mechanism=Mechanism.SHA256_RSA_PKCS)
    print(f"{time.perf_counter() - start:.6f}")
    session.close()
    """
)


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # progress shows when piped to a file
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a small smoke run")
    args = parser.parse_args()
    if args.quick:
        args.files, args.runs = 20, 1
    base = Path(tempfile.mkdtemp(prefix="signkit-bench-xml-"))
    try:
        env, module, pin = build_token(base)
        size = make_inputs(base / "in", base / "templates", args.files)
        key_pem, cert_pem = pem_key_and_cert(base)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}, "
            f"{args.files} x {size / 1024:.1f} KB e-invoices, SoftHSM RSA-2048"
        )
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        times: dict[str, list[float]] = {"signkit": [], "signxml": [], "xmlsec1": []}
        loops: list[float] = []
        token_only: list[float] = []
        for run in range(-1, args.runs):  # run -1: untimed warm-up (caches)
            if run >= 0:
                _, stdout = timed(
                    [sys.executable, "-c", TOKEN_ONLY, module, TOKEN, KEY, pin, str(args.files)],
                    env,
                )
                token_only.append(float(stdout.strip()))
            for name in ("signkit", "signxml", "xmlsec1"):
                out = base / f"out-{name}-{run + 1}"
                out.mkdir()
                if name == "signkit":
                    cmd = [
                        str(BIN / "signkit"),
                        "sign",
                        "xml",
                        str(base / "in"),
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
                    times[name].append(timed(cmd, {**env, "SIGNKIT_PIN": pin})[0])
                elif name == "signxml":
                    cmd = [
                        sys.executable,
                        "-c",
                        SIGNXML,
                        str(base / "in"),
                        str(out),
                        module,
                        TOKEN,
                        KEY,
                        pin,
                        str(cert_pem),
                    ]
                    wall, stdout = timed(cmd, env)
                    times[name].append(wall)
                    loops.append(float(stdout.strip()))
                else:
                    # The warm-up fills caches; xmlsec1 needs a few files for that.
                    templates = sorted((base / "templates").glob("*.xml"))
                    if run < 0:
                        templates = templates[:20]
                    start = time.perf_counter()
                    for tmpl in templates:
                        timed(
                            [
                                "xmlsec1",
                                "--sign",
                                "--privkey-pem",
                                f"{key_pem},{cert_pem}",
                                "--output",
                                str(out / tmpl.name),
                                str(tmpl),
                            ],
                            env,
                        )
                    times[name].append(time.perf_counter() - start)
                count = len(list(out.glob("*.xml")))
                if count != args.files and not (run < 0 and name == "xmlsec1"):
                    sys.exit(f"{name}: {count} outputs for {args.files} inputs")
            if run < 0:
                for v in times.values():
                    v.clear()
                loops.clear()
                continue
            print(
                f"run {run + 1}: signkit {times['signkit'][-1]:.2f} s, "
                f"signxml {times['signxml'][-1]:.2f} s (loop {loops[-1]:.2f} s), "
                f"xmlsec1 per file {times['xmlsec1'][-1]:.2f} s, "
                f"token alone {token_only[-1]:.2f} s"
            )
        rate = {k: args.files / statistics.median(v) for k, v in times.items()}
        loop_rate = args.files / statistics.median(loops)
        print(f"signkit              {rate['signkit']:8.1f} files/s  (median of {args.runs})")
        print(f"signxml one process  {rate['signxml']:8.1f} files/s  (median of {args.runs})")
        print(f"  signxml loop only  {loop_rate:8.1f} files/s  (after imports and login)")
        print(f"xmlsec1 per file     {rate['xmlsec1']:8.1f} files/s  (median of {args.runs})")
        token_rate = args.files / statistics.median(token_only)
        print(
            f"token alone          {token_rate:8.1f} signatures/s  (one thread, median of "
            f"{args.runs}; signkit reaches {rate['signkit'] / token_rate:.0%} of it)"
        )
        print(
            f"ratio vs xmlsec1 per file:    x{rate['signkit'] / rate['xmlsec1']:.1f}  (goal >= 20)"
        )
        print(
            f"ratio vs signxml one process: x{rate['signkit'] / rate['signxml']:.2f}  (goal >= 1.2)"
        )
        print(f"ratio vs signxml loop only:   x{rate['signkit'] / loop_rate:.2f}")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
