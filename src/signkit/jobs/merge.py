"""Join the JSON reports of a run split into parts (--shard K/N on several
hosts, array jobs) into the report one run over every document would give."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from signkit.errors import ExitCode, InputError
from signkit.jobs.report import SCHEMA_VERSION, Status, met_a_bug

# Verdicts of `signkit verify` (verify.verdict.Indication), worst last.
_INDICATIONS = ("PASSED", "INDETERMINATE", "FAILED")


def _check_parts(parts: Sequence[tuple[str, dict[str, Any]]]) -> tuple[str, list[str]]:
    """The command the parts share and their shards, or InputError naming the
    part that does not fit."""
    if not parts:
        raise InputError("no report to merge")
    for name, data in parts:
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            raise InputError(
                f"not a signkit report of schema version {SCHEMA_VERSION}", subject=name
            )
        if not isinstance(data.get("documents"), list):
            raise InputError("the report has no document list", subject=name)
    command = str(parts[0][1].get("command"))
    for name, data in parts:
        if data.get("command") != command:
            raise InputError(
                f"a report of `{data.get('command')}` cannot join reports of `{command}`",
                subject=name,
            )
    shards = [data.get("shard") for _, data in parts]
    if any(shards) and not all(shards):
        raise InputError("reports of a split run (--shard) and of a whole run cannot be merged")
    if not any(shards):
        return command, []
    counts = {str(s).partition("/")[2] for s in shards}
    if len(counts) != 1:
        raise InputError(
            f"the parts split the documents differently ({', '.join(map(str, shards))})"
        )
    (count,) = counts
    seen: dict[str, str] = {}
    for name, data in parts:
        shard = str(data["shard"])
        if shard in seen:
            raise InputError(f"shard {shard} given twice (also in {seen[shard]})", subject=name)
        seen[shard] = name
    missing = [f"{k}/{count}" for k in range(1, int(count) + 1) if f"{k}/{count}" not in seen]
    if missing:
        raise InputError(
            f"the parts do not cover every document: shard(s) {', '.join(missing)} missing"
        )
    return command, sorted(seen, key=lambda s: int(s.partition("/")[0]))


def _exit_code(command: str, parts: Sequence[dict[str, Any]], docs: list[dict[str, Any]]) -> int:
    """The exit code one run over all the documents would have had: a part
    stopped by a signal, a bug, then a part's run-level error win; then the
    documents decide, by the rules of the command."""
    codes = [int(p.get("exit_code") or 0) for p in parts]
    for code in codes:
        if code >= 128:
            return code
    if ExitCode.INTERNAL in codes:
        return int(ExitCode.INTERNAL)
    for part in parts:
        error = part.get("run_error")
        if error:
            return int(error.get("code") or ExitCode.INTERNAL)
    failed = [d for d in docs if d.get("status") == Status.FAILED.value]
    if met_a_bug(d.get("error_code") for d in failed):
        return int(ExitCode.INTERNAL)
    if command == "verify":
        indications = {(d.get("verdict") or {}).get("indication") for d in docs}
        if failed or "FAILED" in indications:
            return int(ExitCode.DOCUMENTS_FAILED)
        return int(ExitCode.INDETERMINATE if "INDETERMINATE" in indications else ExitCode.OK)
    if failed and all(d.get("error_code") == ExitCode.TEMPFAIL for d in failed):
        return int(ExitCode.TEMPFAIL)
    if failed:
        return int(ExitCode.DOCUMENTS_FAILED)
    left = [
        d
        for d in docs
        if d.get("status") == Status.NOT_ATTEMPTED.value
        and d.get("error_code") == ExitCode.TEMPFAIL
    ]
    return int(ExitCode.TEMPFAIL if left else ExitCode.OK)


def _status(code: int, parts: Sequence[dict[str, Any]]) -> str:
    if code >= 128:
        return "interrupted"
    if code == ExitCode.INTERNAL or any(p.get("run_error") for p in parts):
        return "error"
    if code == ExitCode.TEMPFAIL:
        return "retry"
    return "ok" if code == ExitCode.OK else "failed"


def merge_reports(parts: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One report from the parts' reports (``(name, data)``, each as written by
    --report or --json): documents in the order of the shards, totals, status
    and exit code computed again over all of them, and what each part was."""
    command, shards = _check_parts(parts)
    datas = [data for _, data in parts]
    if shards:
        by_shard = {str(data["shard"]): (name, data) for name, data in parts}
        ordered = [by_shard[s] for s in shards]
    else:
        ordered = list(parts)
    docs = [doc for _, data in ordered for doc in data["documents"]]
    totals = {s.value: 0 for s in Status}
    for doc in docs:
        status = str(doc.get("status"))
        totals[status] = totals.get(status, 0) + 1
    totals["total"] = len(docs)
    starts = [datetime.fromisoformat(d["started"]) for d in datas if d.get("started")]
    ends = [datetime.fromisoformat(d["finished"]) for d in datas if d.get("finished")]
    started, finished = (min(starts), max(ends)) if starts and ends else (None, None)
    code = _exit_code(command, datas, docs)
    levels = {d.get("level") for d in datas if d.get("level")}
    signers = [d["signer"] for d in datas if d.get("signer")]
    warnings = list(dict.fromkeys(w for d in datas for w in d.get("warnings") or ()))
    nothing = [d.get("nothing_to_do") for d in datas]
    merged: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "command": command,
        "dry_run": any(d.get("dry_run") for d in datas),
        "started": started.isoformat() if started else None,
        "finished": finished.isoformat() if finished else None,
        "duration_s": round((finished - started).total_seconds(), 3)
        if started and finished
        else None,
        "level": levels.pop() if len(levels) == 1 else None,
        "signer": signers[0] if signers and all(s == signers[0] for s in signers) else {},
        "totals": totals,
        "status": _status(code, datas),
        "exit_code": code,
        "run_error": next((d["run_error"] for d in datas if d.get("run_error")), None),
        "warnings": warnings,
        "nothing_to_do": nothing[0] if all(nothing) else None,
        "shard": None,
        "parts": [
            {
                "report": name,
                "shard": data.get("shard"),
                "status": data.get("status"),
                "exit_code": data.get("exit_code"),
                "documents": len(data["documents"]),
                "started": data.get("started"),
                "finished": data.get("finished"),
            }
            for name, data in ordered
        ],
        "documents": docs,
    }
    if command == "verify":
        counts = dict.fromkeys(_INDICATIONS, 0)
        for doc in docs:
            indication = (doc.get("verdict") or {}).get("indication")
            if indication in counts:
                counts[indication] += 1
        merged["verdicts"] = counts
    return merged
