"""Check an audit log: the hash chain across rotated files, the seals, the
time-stamps, and (given an anchor kept elsewhere) that nothing was cut off.

The result names the first bad line and what is wrong with it. The kind is
inferred from what the neighbouring lines still say (their sequence numbers
and the hashes they carry), so it is a diagnosis, not a proof; the line is
where the chain first stops being what was written.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signkit.audit.log import GENESIS, line_hash, parse_record, timestamp_message
from signkit.audit.seal import check_seal
from signkit.errors import ExitCode, InputError


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One thing wrong with the log, at one line."""

    file: str
    """Log file."""
    line: int
    """1-based line number in that file."""
    kind: str
    """edited, deleted, inserted, reordered, unsealed, truncated, missing-file,
    unknown-seal-key, untrusted-tsa."""
    message: str
    """What is wrong, for a person."""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind}: {self.message}"


@dataclass(kw_only=True)
class VerifyReport:
    """What `audit verify` established. ``exit_code`` is never 0 when something is wrong."""

    files: list[str] = field(default_factory=list)
    """The chain's files, oldest first."""
    records: int = 0
    """Records read."""
    last_seq: int = 0
    """Sequence number of the last record."""
    seals: int = 0
    """Seals whose signature verified."""
    timestamps: list[dict[str, Any]] = field(default_factory=list)
    """Verified seal time-stamps (seq, gen_time, TSA)."""
    sealed_through: int = 0
    """Sequence number of the last valid seal (everything up to it is covered)."""
    anchor_checked: int = 0
    """Anchor lines compared with the log."""
    problem: Finding | None = None
    """The first sign of tampering."""
    key_problem: Finding | None = None
    """A seal that could not be checked (no trusted key for it)."""
    notes: list[str] = field(default_factory=list)
    """Things that are not tampering but a reader should know (torn last line, unsealed tail)."""

    @property
    def exit_code(self) -> ExitCode:
        """1 tampering, 5 seals not checkable, else 0."""
        if self.problem is not None:
            return ExitCode.DOCUMENTS_FAILED
        if self.key_problem is not None:
            return ExitCode.TRUST
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        """Machine form (for --json)."""

        def finding(f: Finding | None) -> dict[str, Any] | None:
            return None if f is None else {**f.__dict__}

        return {
            "ok": self.exit_code == ExitCode.OK,
            "exit_code": int(self.exit_code),
            "files": self.files,
            "records": self.records,
            "last_seq": self.last_seq,
            "seals": self.seals,
            "sealed_through": self.sealed_through,
            "timestamps": self.timestamps,
            "anchor_checked": self.anchor_checked,
            "problem": finding(self.problem),
            "key_problem": finding(self.key_problem),
            "notes": self.notes,
        }


@dataclass(frozen=True)
class _Line:
    file: str
    number: int
    raw: bytes
    complete: bool


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError("audit log not found", subject=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", subject=str(path)) from None


def chain_files(path: Path) -> tuple[list[Path], Finding | None]:
    """The files of the chain ending in ``path``, oldest first, following each
    ``rotated`` record back; a Finding when a previous file is missing."""
    files = [path]
    seen = {path.resolve()}
    while True:
        data = _read(files[0])
        first = parse_record(data.split(b"\n", 1)[0])
        if first is None or first.get("type") != "rotated":
            return files, None
        previous = files[0].with_name(str(first.get("previous_file", "")))
        if not previous.is_file() or previous.resolve() in seen:
            return files, Finding(
                file=str(files[0]),
                line=1,
                kind="missing-file",
                message=f"the previous log file '{previous.name}' named here is missing "
                "(deleted or renamed): the chain cannot be followed back",
            )
        seen.add(previous.resolve())
        files.insert(0, previous)


class _Records:
    """Records parsed on demand: the walk looks a few lines around the current
    one, so a year of log need not sit in memory as dictionaries."""

    def __init__(self, lines: list[_Line]) -> None:
        self._lines = lines
        self._cache: dict[int, dict[str, Any] | None] = {}

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        if i not in self._cache:
            if len(self._cache) > 4096:
                self._cache.clear()
            line = self._lines[i]
            self._cache[i] = parse_record(line.raw) if line.complete else None
        return self._cache[i]


def _split(path: Path) -> list[_Line]:
    data = _read(path)
    if not data:
        return []
    parts = data.split(b"\n")
    complete_last = parts[-1] == b""
    if complete_last:
        parts.pop()
    return [
        _Line(str(path), n + 1, raw, complete_last or n < len(parts) - 1)
        for n, raw in enumerate(parts)
    ]


def verify_log(
    path: Path,
    *,
    seal_keys: Mapping[str, Any],
    anchor: Path | None = None,
    check_seals: bool = True,
    tsa_anchors: tuple[Path, ...] = (),
) -> VerifyReport:
    """Verify the audit chain ending in ``path``.

    ``tsa_anchors``: trust anchors the TSA certificates of seal time-stamps
    must chain to (at the time-stamp's time); without them only the token's
    own signature and imprint are checked.

    ``seal_keys`` maps seal-key fingerprints to trusted Ed25519 public keys;
    seals by other keys are a key problem (exit 5). ``anchor`` is a file of
    seal lines copied outside the log: each must be in the log, unchanged.
    Raises InputError when a file cannot be read.
    """
    report = VerifyReport()
    files, missing = chain_files(path)
    report.files = [str(f) for f in files]
    lines = [line for f in files for line in _split(f)]
    records = _Records(lines)
    hashes = [line_hash(line.raw) for line in lines]
    n = len(lines)

    def at(i: int, kind: str, message: str) -> Finding:
        if i >= n:
            # Past the end: the first line that is not wholly there.
            last = lines[-1] if lines else _Line(str(path), 0, b"", True)
            number = last.number + 1 if last.complete else last.number
            return Finding(file=last.file, line=number, kind=kind, message=message)
        return Finding(file=lines[i].file, line=lines[i].number, kind=kind, message=message)

    def prev_of(i: int) -> str | None:
        r = records[i] if 0 <= i < n else None
        return None if r is None else str(r["prev"])

    def hash_before(i: int) -> str:
        return hashes[i - 1] if i >= 1 else GENESIS

    def seal_ok(i: int) -> bool:
        r = records[i]
        if r is None or r.get("type") != "seal":
            return False
        key = seal_keys.get(str(r.get("key")))
        return key is not None and check_seal(r, key)

    def diagnose(i: int, expected_seq: int, expected_prev: str) -> Finding:
        rec = records[i]
        assert rec is not None  # noqa: S101 - only called on records
        seq, prev = rec["seq"], rec["prev"]
        if prev == expected_prev:
            return at(i, "edited", f"sequence number {seq} where {expected_seq} was due")
        if seq == expected_seq:
            # Either the line before changed, or this line's own `prev`.
            this_intact = prev_of(i + 1) == hashes[i] if i + 1 < n else seal_ok(i)
            if this_intact and i >= 1:
                return at(
                    i - 1,
                    "edited",
                    "this line was changed: its hash no longer matches what the next line carries",
                )
            return at(i, "edited", "the hash this line carries does not match the line before")
        if seq < expected_seq:
            if i >= 1 and prev == hash_before(i - 1):
                if lines[i].raw == lines[i - 1].raw:
                    return at(i, "inserted", f"a copy of the line before (seq {seq})")
                return at(i - 1, "inserted", "this line is not part of the chain written")
            return at(i, "inserted", f"sequence number {seq} again, after {expected_seq - 1}")
        later = next(
            (j for j in range(i + 1, n) if (records[j] or {}).get("seq") == expected_seq), None
        )
        if later is None:
            return at(
                i,
                "deleted",
                f"records {expected_seq}..{seq - 1} are missing before this line",
            )
        if later == i + 1 and prev_of(i + 1) == expected_prev:
            if i + 2 < n and prev_of(i + 2) == hashes[i + 1]:
                return at(i, "inserted", f"a line with seq {seq} placed before seq {expected_seq}")
        return at(
            i,
            "reordered",
            f"seq {seq} stands where {expected_seq} was due; seq {expected_seq} is at "
            f"{lines[later].file}:{lines[later].number}",
        )

    expected_seq, expected_prev = 1, GENESIS
    last_seal = -1
    seq_index: dict[int, int] = {}
    problem: Finding | None = missing
    i = 0
    while problem is None and i < n:
        line, rec = lines[i], records[i]
        if not line.complete:
            report.notes.append(
                f"{line.file}:{line.number}: torn last line ({len(line.raw)} bytes, a crash "
                "while writing); the next run marks it and continues"
            )
            break
        if rec is None:
            nxt = records[i + 1] if i + 1 < n else None
            if (
                nxt is not None
                and nxt.get("type") == "torn-line"
                and nxt["prev"] == hashes[i]
                and nxt["seq"] == expected_seq
            ):
                report.notes.append(
                    f"{line.file}:{line.number}: torn line (a crash while writing), marked "
                    f"by the next run at line {lines[i + 1].number}"
                )
                expected_prev = hashes[i]
                i += 1
                continue
            problem = at(i, "edited", "not a valid audit record")
            break
        if rec["seq"] != expected_seq or rec["prev"] != expected_prev:
            problem = diagnose(i, expected_seq, expected_prev)
            break
        kind = rec.get("type")
        if kind == "seal" and check_seals:
            # The seal names its key and carries its public half: a seal that
            # does not verify even under the key it carries was changed; one
            # that does, under a key nobody trusts, is a key problem (exit 5).
            key = seal_keys.get(str(rec.get("key")))
            embedded = _embedded_key(rec)
            if key is None and embedded is not None and check_seal(rec, embedded):
                if report.seals:
                    # After seals by a trusted key, a seal by another key is
                    # someone without that key continuing (or rewriting) the log.
                    since = f"line {lines[last_seal].number} of {lines[last_seal].file}"
                    problem = at(
                        i,
                        "forged-seal",
                        f"sealed by key {str(rec.get('key'))[:16]}…, not a trusted seal key, "
                        f"after seals by a trusted key: the records since {since} were "
                        "written by someone without the seal key",
                    )
                    break
                if report.key_problem is None:
                    report.key_problem = at(
                        i,
                        "unknown-seal-key",
                        f"sealed by key {str(rec.get('key'))[:16]}…, which is not among the "
                        "trusted seal keys",
                    )
            elif key is None or not check_seal(rec, key):
                since = (
                    f"line {lines[last_seal].number} of {lines[last_seal].file}"
                    if last_seal >= 0
                    else "the start"
                )
                problem = at(
                    i,
                    "edited",
                    "the seal does not verify: this seal, or a line since the previous "
                    f"seal ({since}), was changed",
                )
                break
            else:
                report.seals += 1
                report.sealed_through = rec["seq"]
            last_seal = i
        elif kind == "seal-timestamp" and check_seals and rec.get("token"):
            covered = seq_index.get(int(rec.get("covers_seq", -1)))
            ok, detail = _check_timestamp(rec, None if covered is None else hashes[covered])
            if not ok:
                problem = at(i, "edited", f"seal time-stamp invalid: {detail}")
                break
            trusted = None
            if tsa_anchors:
                untrusted = _check_tsa_trust(rec, tsa_anchors)
                trusted = untrusted is None
                if untrusted is not None and report.key_problem is None:
                    report.key_problem = at(i, "untrusted-tsa", untrusted)
            report.timestamps.append(
                {
                    "seq": rec["seq"],
                    "gen_time": rec.get("gen_time"),
                    "tsa": rec.get("tsa"),
                    "tsa_trusted": trusted,
                }
            )
        seq_index[rec["seq"]] = i
        report.records += 1
        report.last_seq = rec["seq"]
        expected_seq, expected_prev = expected_seq + 1, hashes[i]
        i += 1

    tail = [j for j in range(last_seal + 1, n) if lines[j].complete and records[j] is not None]
    torn_end = n > 0 and not lines[-1].complete
    if problem is None and check_seals and tail and torn_end:
        # One commit is one write; a crash can cut a long write between
        # lines as well as inside one: its complete lines end in the torn one.
        report.notes.append(
            f"{len(tail)} record(s) after the last seal end in the torn last line: a commit "
            "cut by a crash while writing (they carry no seal; the next run marks them)"
        )
    elif problem is None and check_seals and tail:
        # Every sealing writer ends each commit with a seal in the same write;
        # complete records after the last seal were written some other way.
        last = lines[tail[-1]]
        problem = at(
            tail[0],
            "unsealed",
            f"{len(tail)} record(s) after the last seal (to line {last.number}): added by "
            "someone without the seal key, or the log was cut inside a commit",
        )
    if anchor is not None:
        anchor_problem = _check_anchor(anchor, lines, records, seq_index, report, at)
        if anchor_problem is not None and (
            problem is None
            or problem.kind == "unsealed"
            or _position(anchor_problem, lines) < _position(problem, lines)
        ):
            problem = anchor_problem
    elif report.seals:
        report.notes.append(
            "no anchor given (--anchor): removal of whole runs from the end cannot be detected"
        )
    report.problem = problem
    return report


def _embedded_key(rec: Mapping[str, Any]) -> Any:
    """The public key a seal carries, if it matches the fingerprint it names."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from signkit.audit.seal import fingerprint

    try:
        raw = base64.b64decode(str(rec.get("public_key", "")), validate=True)
        if fingerprint(raw) != rec.get("key"):
            return None
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return None


def _position(f: Finding, lines: list[_Line]) -> int:
    for index, line in enumerate(lines):
        if line.file == f.file and line.number == f.line:
            return index
    return len(lines)


def _check_anchor(
    anchor: Path,
    lines: list[_Line],
    records: _Records,
    seq_index: dict[int, int],
    report: VerifyReport,
    at: Any,
) -> Finding | None:
    data = _read(anchor)
    first: Finding | None = None
    first_pos = len(lines) + 1
    for raw in data.split(b"\n"):
        rec = parse_record(raw)
        if rec is None:
            continue
        report.anchor_checked += 1
        seq = int(rec["seq"])
        index = seq_index.get(seq)
        if index is None:
            if report.last_seq < seq:
                pos = len(lines)
                finding = at(
                    len(lines),
                    "truncated",
                    f"the log ends at seq {report.last_seq}, but the anchor holds the "
                    f"{rec.get('type')} with seq {seq} (run {rec.get('run')}, "
                    f"{rec.get('time')}): lines were removed from the end",
                )
            else:
                continue  # before the checked part (an earlier problem stopped the walk)
        elif lines[index].raw != raw:
            pos = index
            finding = at(
                index, "edited", f"differs from the anchor's copy of seq {seq} ({rec.get('type')})"
            )
        else:
            continue
        if pos < first_pos:
            first, first_pos = finding, pos
    return first


def _check_tsa_trust(rec: Mapping[str, Any], anchors: tuple[Path, ...]) -> str | None:
    """None when the TSA certificate chains to ``anchors`` at the time-stamp's time."""
    from datetime import datetime

    from asn1crypto import cms

    from signkit.errors import SignkitError
    from signkit.pki.anchors import TrustSpec
    from signkit.pki.chain import check_signer
    from signkit.pki.timestamps import tsa_certificates

    token = cms.ContentInfo.load(base64.b64decode(str(rec["token"])))
    cert, others = tsa_certificates(token)
    if cert is None:
        return "the TSA certificate is not in the token"
    info = token["content"]["encap_content_info"]["content"].parsed
    moment: datetime = info["gen_time"].native
    spec = TrustSpec(anchors=anchors, revocation="off", offline=True)
    try:
        check_signer(cert, others, spec, now=moment, require_signing_usage=False)
    except SignkitError as exc:
        return f"TSA certificate not trusted: {exc.message}"
    return None


def _check_timestamp(rec: Mapping[str, Any], covered_hash: str | None) -> tuple[bool, str]:
    """(valid, what is wrong): imprint over the covered line, and the TSA's CMS signature."""
    from asn1crypto import cms, tsp

    if covered_hash is None or covered_hash != rec.get("covers_sha256"):
        return False, "the line it covers is not in the log as time-stamped"
    try:
        token = cms.ContentInfo.load(base64.b64decode(str(rec["token"]), validate=True))
        signed = token["content"]
        info = signed["encap_content_info"]["content"].parsed
        if not isinstance(info, tsp.TSTInfo):
            return False, "not a time-stamp token"
        imprint = info["message_imprint"]
        algo = imprint["hash_algorithm"]["algorithm"].native
        message = timestamp_message(int(rec["covers_seq"]), covered_hash)
        if hashlib.new(algo, message).digest() != imprint["hashed_message"].native:
            return False, "the token time-stamps another line"
        return _check_cms_signature(signed)
    except (ValueError, KeyError, TypeError) as exc:
        return False, f"malformed token ({exc})"


def _check_cms_signature(signed: Any) -> tuple[bool, str]:
    from asn1crypto import cms
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

    si = signed["signer_infos"][0]
    sid = si["sid"].chosen
    cert = None
    for choice in signed["certificates"] or []:
        c = choice.chosen
        if (
            isinstance(sid, cms.IssuerAndSerialNumber)
            and c.serial_number == sid["serial_number"].native
            and c.issuer == sid["issuer"]
        ):
            cert = c
    if cert is None:
        return False, "the TSA certificate is not in the token"
    digest_name = si["digest_algorithm"]["algorithm"].native
    content = signed["encap_content_info"]["content"].contents
    attrs = si["signed_attrs"]
    digests = [a["values"][0].native for a in attrs if a["type"].native == "message_digest"]
    if not digests or digests[0] != hashlib.new(digest_name, content).digest():
        return False, "the token's content does not match its signed digest"
    data = attrs.untag().dump(force=True)
    public = x509.load_der_x509_certificate(cert.dump()).public_key()
    algo = getattr(hashes, digest_name.upper())()
    signature = si["signature"].native
    try:
        if isinstance(public, rsa.RSAPublicKey):
            if si["signature_algorithm"].signature_algo == "rsassa_pss":
                pad: Any = padding.PSS(padding.MGF1(algo), padding.PSS.AUTO)
            else:
                pad = padding.PKCS1v15()
            public.verify(signature, data, pad, algo)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, data, ec.ECDSA(algo))
        else:
            return False, "unsupported TSA key type"
    except InvalidSignature:
        return False, "the TSA's signature does not verify"
    return True, ""
