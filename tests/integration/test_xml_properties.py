"""Property: every XML signature signkit makes verifies, by xmlsec1 and by `signkit verify`.

Hypothesis draws documents with what breaks naive signers: CDATA sections and
character references with non-ASCII text, xml:lang/xml:space on ancestors of
the signed element, default and prefixed namespaces (and undeclared default
ones), comments and PIs before and after the root, mixed content (text after
the signed element), CRLF. Each document is signed in every form (enveloped
whole document, enveloped #Id, enveloping, detached file, detached file#Id),
at the level (plain or XAdES B-B) and canonicalisation (inclusive or
exclusive) drawn with it, so every combination is met many times.

The documents are signed many per `signkit sign xml` run (a manifest per form
and canonicalisation) and checked many per xmlsec1 and `signkit verify` run,
so that hundreds of examples take a few minutes, not an hour. Hypothesis
generates the examples; a failure names the documents that did not verify.
"""

from __future__ import annotations

import csv
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.infra import PkiServices, SoftHsm, pki_certificate
from support.runner import Runner

pytestmark = [pytest.mark.softhsm, pytest.mark.pki]

EXAMPLES = 300
KEY = ["--token-label", "signkit-test-a", "--key-label", "signer-rsa2048"]
NS_D = "urn:signkit:prop:d"
NS_P = "urn:signkit:prop:p"
XADES = "http://uri.etsi.org/01903/v1.3.2#"
FORMS = {
    "enveloped": [],
    "enveloped-id": [],
    "enveloping": ["--form", "enveloping"],
    "detached": ["--form", "detached"],
    "detached-id": ["--form", "detached"],
}

_text = st.sampled_from(
    [
        "Tiếng Việt",
        "đơn giá 15.000 ₫",
        "&#7879;&#x1EC7;",
        "&amp; &lt;b&gt; &quot;x&quot; &apos;",
        "\r\n",
        "\n  ",
        "x > y",
        "<![CDATA[<b>ê & ă</b> ]]>",
        "<![CDATA[]]>",
        "<!-- chú thích -->",
        "<?xu-ly dữ liệu?>",
        "",
    ]
)
_attrs = st.sampled_from(
    ["", ' xml:lang="vi"', ' xml:space="preserve"', ' xml:lang="en" a="giá &amp; trị"', ' p:k="1"']
)
_names = st.sampled_from(["hoSo", "vanBan", "muc", "dong"])
_namespaces = st.sampled_from(["", f' xmlns="{NS_D}"', ' xmlns=""'])
_misc = st.sampled_from(["<!-- trước -->", "<?pi dữ liệu?>", "<!--x-->", "<?a?>"])
_newline = st.sampled_from(["\n", "\r\n"])


@st.composite
def _element(draw: st.DrawFn, depth: int, target: bool) -> str:
    """An element; when ``target``, the signed noiDung Id="nd" is somewhere inside."""
    prefixed = draw(st.booleans())
    name = ("p:" if prefixed else "") + draw(_names)
    head = f"<{name}{draw(_namespaces)}{draw(_attrs)}>"
    parts = [draw(_text)]
    kids = draw(st.integers(0, 0 if depth >= 3 else 3))
    at = draw(st.integers(0, kids)) if target else -1
    for i in range(kids + 1):
        if i == at:
            nested = depth < 2 and draw(st.booleans())
            parts.append(draw(_element(depth + 1, True)) if nested else draw(_signed()))
        elif i < kids:
            parts.append(draw(_element(depth + 1, False)))
        parts.append(draw(_text))
    return head + "".join(parts) + f"</{name}>"


@st.composite
def _signed(draw: st.DrawFn) -> str:
    """The element the #Id forms sign: CDATA with non-ASCII text, and text after it."""
    name = draw(st.sampled_from(["noiDung", "p:noiDung"]))
    ns = draw(_namespaces)
    body = draw(st.lists(_text, min_size=1, max_size=4))
    inner = draw(_element(3, False)) if draw(st.booleans()) else ""
    cdata = "<![CDATA[Hợp đồng <số 7> & phụ lục ê]]>"
    # Id for signkit's --reference, xml:id as well: xmlsec1 resolves "file#nd" in
    # another document by ID-typed attributes only, and xml:id is one everywhere.
    attrs = f'{draw(_attrs)} Id="nd" xml:id="nd"'
    return f"<{name}{ns}{attrs}>{cdata}{''.join(body)}{inner}</{name}>" + draw(
        st.sampled_from([" còn tiếp", "\r\nsau", "", "&#7879;"])
    )


@st.composite
def documents(draw: st.DrawFn) -> str:
    nl = draw(_newline)
    decl = draw(st.sampled_from(['<?xml version="1.0" encoding="UTF-8"?>' + nl, ""]))
    before = "".join(m + nl for m in draw(st.lists(_misc, max_size=2)))
    after = "".join(nl + m for m in draw(st.lists(_misc, max_size=2)))
    root_name = draw(_names)
    root_attrs = draw(
        st.sampled_from(["", ' xml:lang="vi"', ' xml:space="preserve" xml:lang="vi"'])
    )
    default = draw(st.sampled_from(["", f' xmlns="{NS_D}"']))
    body = draw(_element(1, True))
    root = f'<{root_name}{default} xmlns:p="{NS_P}"{root_attrs}>{nl}{body}{nl}</{root_name}>'
    return decl + before + root + after + nl


@dataclass(frozen=True)
class Example:
    document: str
    level: str
    c14n: str


def _write_manifest(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["input", "output", "reference", "level"])
        writer.writeheader()
        writer.writerows(rows)


def _xmlsec1(files: list[Path], tmp: Path) -> list[Path]:
    """The files xmlsec1 does not verify (checked many per run, then one by one).
    The signed element's xml:id is its ID for xmlsec1 (an --id-attr for its Id as
    well would register "nd" twice)."""
    root, interm = tmp / "root.der", tmp / "interm.der"
    root.write_bytes(pki_certificate("root-ca"))
    interm.write_bytes(pki_certificate("interm-ca"))
    base = ["xmlsec1", "--verify", "--trusted-der", str(root), "--untrusted-der", str(interm),
            "--id-attr:Id", f"{XADES}:SignedProperties"]  # fmt: skip
    bad: list[Path] = []
    by_directory: dict[Path, list[Path]] = {}
    for path in files:
        by_directory.setdefault(path.parent, []).append(path)
    chunks = [
        group[start : start + 100]
        for group in by_directory.values()
        for start in range(0, len(group), 100)
    ]
    for chunk in chunks:
        proc = subprocess.run(
            [*base, *map(str, chunk)], capture_output=True, text=True, check=False,
            cwd=chunk[0].parent,
        )  # fmt: skip
        oks = [line for line in proc.stderr.splitlines() if line == "OK"]
        if proc.returncode == 0 and len(oks) == len(chunk):
            continue
        for path in chunk:
            one = subprocess.run(
                [*base, str(path)], capture_output=True, text=True, check=False, cwd=path.parent
            )
            if one.returncode != 0:
                bad.append(path)
    return bad


def test_every_form_of_every_generated_document_verifies(
    signkit: Runner, softhsm: SoftHsm, pki: PkiServices, trust: Path, tmp_path: Path
) -> None:
    examples: list[Example] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        documents(),
        st.sampled_from(["plain", "B-B"]),
        st.sampled_from(["inclusive", "exclusive"]),
    )
    def collect(document: str, level: str, c14n: str) -> None:
        examples.append(Example(document, level, c14n))

    collect()
    examples = list({e.document: e for e in examples}.values())
    assert len(examples) >= EXAMPLES * 0.9, f"only {len(examples)} distinct documents"
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, example in enumerate(examples):
        (inputs / f"d{i:04d}.xml").write_bytes(example.document.encode("utf-8"))
    env = {"SIGNKIT_MODULE": softhsm.module, "SIGNKIT_PIN": softhsm.user_pin}
    outputs: list[tuple[Path, int, str]] = []
    for form, args in FORMS.items():
        for c14n in ("inclusive", "exclusive"):
            out = tmp_path / "out" / form / c14n
            out.mkdir(parents=True)
            rows = []
            for i, example in enumerate(examples):
                if example.c14n != c14n:
                    continue
                output = out / f"d{i:04d}.xml"
                rows.append(
                    {
                        "input": str(inputs / f"d{i:04d}.xml"),
                        "output": str(output),
                        "reference": "nd" if form.endswith("-id") else "",
                        "level": example.level,
                    }
                )
                outputs.append((output, i, form))
            manifest = tmp_path / f"{form}-{c14n}.csv"
            _write_manifest(manifest, rows)
            proc = signkit(
                "sign", "xml", "--manifest", str(manifest), *KEY, *args, "--c14n", c14n,
                "--trust", str(trust), "--revocation", "off", "--audit-log",
                str(tmp_path / "audit.jsonl"), "--json", env=env, timeout=600,
            )  # fmt: skip
            assert proc.stdout, proc.stderr
            report = json.loads(proc.stdout)
            failed = [d for d in report["documents"] if d["status"] != "signed"]
            assert proc.returncode == 0 and not failed, (form, c14n, failed[:3], proc.stderr)
    files = [path for path, _, _ in outputs]
    refused = _xmlsec1(files, tmp_path)
    assert not refused, _describe(refused, outputs, examples, "xmlsec1")
    proc = signkit(
        "verify", "-r", str(tmp_path / "out"), "--trust", str(trust), "--offline",
        "--revocation", "off", "--json", "--no-audit", timeout=1200,
    )  # fmt: skip
    assert proc.stdout, proc.stderr
    docs = json.loads(proc.stdout)["documents"]
    assert len(docs) == len(files)
    not_passed = [
        Path(d["input"]) for d in docs if (d["verdict"] or {}).get("indication") != "PASSED"
    ]
    details = {
        d["input"]: d["verdict"]["signatures"] if d["verdict"] else d["error_message"]
        for d in docs
        if Path(d["input"]) in not_passed
    }
    assert not not_passed, (_describe(not_passed, outputs, examples, "signkit verify"), details)
    assert proc.returncode == 0


def _describe(
    paths: list[Path], outputs: list[tuple[Path, int, str]], examples: list[Example], who: str
) -> Any:
    where = {path.resolve(): (i, form) for path, i, form in outputs}
    lines = [f"{who} refused {len(paths)} signature(s)"]
    for path in paths[:5]:
        i, form = where[path.resolve()]
        e = examples[i]
        lines.append(f"{form} {e.level} {e.c14n}: {e.document!r}")
    return "\n".join(lines)
