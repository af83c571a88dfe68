"""Verification pieces that need no token and no network: parsers, verdicts, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from signkit.errors import InputFormatError, UsageError
from signkit.verify import certcheck
from signkit.verify.verdict import (
    DocumentVerdict,
    Indication,
    SubIndication,
    make_verdict,
    sentence,
)


def test_document_verdict_is_the_worst_signature() -> None:
    ok = make_verdict(0, Indication.PASSED, SubIndication.OK)
    unsure = make_verdict(1, Indication.INDETERMINATE, SubIndication.TRY_LATER)
    bad = make_verdict(2, Indication.FAILED, SubIndication.HASH_FAILURE)
    doc = DocumentVerdict.of("a.pdf", "pdf", [ok, unsure, bad], None)
    assert doc.indication is Indication.FAILED and doc.sub_indication is SubIndication.HASH_FAILURE
    assert doc.sentence == "signature 3 of 3: " + sentence(SubIndication.HASH_FAILURE)
    assert DocumentVerdict.of("a.pdf", "pdf", [ok, unsure], None).indication.value == (
        "INDETERMINATE"
    )
    unsigned = DocumentVerdict.of("b.pdf", "pdf", [], None)
    assert unsigned.indication is Indication.FAILED
    assert unsigned.to_json()["signatures"] == []
    # every sub-indication has its sentence
    assert all(sentence(s) for s in SubIndication)


def _status(state: str, days: int = 100) -> certcheck.CertStatus:
    severity = {"ok": "ok", "expiring": "warning", "unknown": "unknown"}.get(state, "critical")
    return certcheck.CertStatus(
        source="test",
        state=state,
        severity=severity,
        subject=f"CN={state}",
        issuer="CN=CA",
        serial="1",
        sha256="0" * 64,
        not_before="2025-01-01T00:00:00+00:00",
        not_after="2035-01-01T00:00:00+00:00",
        days_left=days,
        key_usage=[],
        extended_key_usage=[],
        algorithm="RSA",
        key_size=2048,
        chain="trusted",
        problems=[] if state == "ok" else [f"{state} problem"],
    )


@pytest.mark.parametrize(
    ("states", "code", "nagios", "word"),
    [
        (["ok", "ok"], 0, 0, "OK"),
        (["ok", "expiring"], 7, 1, "WARNING"),
        (["expiring", "revoked"], 5, 2, "CRITICAL"),
        (["ok", "no-signing-usage"], 5, 2, "CRITICAL"),
        (["ok", "unknown"], 0, 3, "UNKNOWN"),
        ([], 0, 3, "UNKNOWN"),
    ],
)
def test_cert_check_exit_codes(states: list[str], code: int, nagios: int, word: str) -> None:
    statuses = [_status(s) for s in states]
    assert certcheck.exit_code(statuses) == code
    got, line = certcheck.nagios(statuses, warn_days=30, crit_days=7)
    assert got == nagios and line.startswith(f"SIGNKIT CERT {word} - ")
    assert "\n" not in line


def test_xml_parser_refuses_dtds_and_garbage() -> None:
    from signkit.verify.xml import parse_safely

    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;">]><r>&c;</r>'
    )
    with pytest.raises(InputFormatError, match="DOCTYPE"):
        parse_safely(bomb, "bomb.xml")
    external = b'<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://127.0.0.1:1/x.dtd"><r/>'
    with pytest.raises(InputFormatError, match="DOCTYPE"):
        parse_safely(external, "ext.xml")
    with pytest.raises(InputFormatError, match="malformed XML"):
        parse_safely(b"<r><unclosed></r>", "bad.xml")
    assert parse_safely(b"<r>ok</r>", "fine.xml").text == "ok"


def test_time_and_format_detection(tmp_path: Path) -> None:
    from signkit.cli.verify import parse_time
    from signkit.jobs.verify_job import detect_format

    assert parse_time("2026-03-12").isoformat() == "2026-03-12T00:00:00+00:00"
    assert parse_time("2026-03-12T09:41:07+07:00").utcoffset() is not None
    assert parse_time("2026-03-12T02:41:07Z").hour == 2
    with pytest.raises(UsageError):
        parse_time("last tuesday")
    pdf = tmp_path / "lies.xml"
    pdf.write_bytes(b"%PDF-1.7\n...")
    xml = tmp_path / "invoice.pdf"
    xml.write_bytes(b"\xef\xbb\xbf  <HDon/>")
    assert detect_format(pdf) == "pdf" and detect_format(xml) == "xml"


@pytest.mark.parametrize(
    ("claimed", "stamped", "flagged"),
    [
        ("2026-03-12T16:41:07+00:00", "2026-03-12T09:41:10+00:00", True),  # local time as UTC
        ("2026-03-12T16:41:07+07:00", "2026-03-12T09:41:10+00:00", False),  # honest +07:00
        ("2026-03-12T09:41:07+00:00", "2026-03-12T09:41:10+00:00", False),
        ("2026-03-12T16:41:07", "2026-03-12T09:41:10+00:00", False),  # no zone: not a claim of UTC
        (None, "2026-03-12T09:41:10+00:00", False),
    ],
)
def test_local_time_labelled_utc_is_flagged(
    claimed: str | None, stamped: str, flagged: bool
) -> None:
    from signkit.verify.verdict import local_time_skew

    assert (local_time_skew(claimed, stamped) is not None) is flagged


def test_the_no_trust_rule_names_who_supplied_the_root() -> None:
    """Regression: when the token's source became "key '…' on token '…'", the
    warning said the root was "supplied by the file"."""
    from signkit.verify.certcheck import _supplier

    token = "key 'leader-vn' on token 'signkit-test-b' (serial 9c9e, slot 1)"
    assert _supplier(token) == "the token"
    assert _supplier("signature 2 of inbox/qd-12.pdf") == "the document"
    assert _supplier("certs/key 'x' on token.pem") == "the file"
