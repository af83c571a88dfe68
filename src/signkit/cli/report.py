"""`signkit report merge`: one report from the parts of a split run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .context import Output, run_command
from .framework import command, grouped, new_app
from .options import ConfigOptions, OutputOptions

app = new_app("report", "Join the JSON reports of a run split with --shard.", no_args_is_help=True)


@app.callback()
def group() -> None:
    """Join the JSON reports of a run split with --shard."""


@command(app, "merge")
@grouped
def merge(
    reports: Annotated[
        list[Path],
        typer.Argument(metavar="REPORT...", dir_okay=False, show_default=False),
    ],
    *,
    target: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            dir_okay=False,
            help="Write the merged report here (atomically) instead of stdout.",
        ),
    ] = None,
    config: ConfigOptions,
    output: OutputOptions,
) -> None:
    """Join the --report (or --json) files of the parts of one run into one report.

    The parts of a run split with --shard K/N must all be there, once each;
    reports of whole runs of the same command can be joined too. Totals,
    verdict counts, status and exit code are computed again over every
    document, as one run over all of them would have reported them; "parts"
    says what each part was. The exit code is the merged run's (3 when a
    report cannot be read or the parts do not fit together).

    \b
    Example (three hosts, one archive):
      parallel --sshlogin host1,host2,host3 --workdir /srv/archive \\
        signkit verify -r docs --trust vn-gov --shard {}/3 --report parts/{}.json ::: 1 2 3
      signkit report merge parts/*.json -o verify.json
    """
    out = Output.of(output)

    def body() -> int:
        import json

        from signkit.errors import InputError
        from signkit.jobs.merge import merge_reports
        from signkit.jobs.report import Items, write_report

        parts: list[tuple[str, Any]] = []
        for path in reports:
            try:
                parts.append((str(path), json.loads(path.read_text(encoding="utf-8"))))
            except OSError as exc:
                raise InputError(
                    f"cannot read ({exc.strerror or exc})", subject=str(path)
                ) from None
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise InputError("not a JSON report", subject=str(path)) from None
        merged = merge_reports(parts)
        # Written one document at a time, as a run writes its own report.
        pieces = {**merged, "documents": Items(merged["documents"])}
        if target is None:
            out.emit_json_pieces(pieces)
        else:
            write_report(target, pieces).close()
        totals = merged["totals"]
        counts = ", ".join(
            f"{n} {status}" for status, n in totals.items() if n and status != "total"
        )
        part_count = len(merged["parts"])
        total = totals["total"]
        out.summary(
            f"{part_count} report(s) merged: {total} document(s) ({counts or 'none'}), "
            f"status {merged['status']}"
        )
        return int(merged["exit_code"])

    run_command(out, body)
