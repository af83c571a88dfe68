"""`signkit token …`: find tokens, keys and certificates; check the PIN."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .context import Output, TerminalPinIO, get_state, run_command
from .options import (
    DebugOpt,
    JsonOpt,
    KeyUriOpt,
    ModuleOpt,
    PinFileOpt,
    PinPadOpt,
    PinStdinOpt,
    QuietOpt,
    SlotOpt,
    TokenLabelOpt,
    TokenSerialOpt,
    VerboseOpt,
)
from .tokenspec import build_token_spec

if TYPE_CHECKING:
    from signkit.tokens.access import TokenSpec
    from signkit.tokens.pkcs11 import TokenSession

app = typer.Typer(help="Find tokens, keys and certificates; check the PIN.", no_args_is_help=True)

ProbeTimeoutOpt = Annotated[
    float,
    typer.Option("--probe-timeout", help="Seconds a module may take to answer before it is "
                 "reported as hung.", min=0.5),
]  # fmt: skip


@contextmanager
def _public_session(spec: TokenSpec) -> Iterator[TokenSession]:
    from signkit.tokens.access import resolve_module
    from signkit.tokens.pkcs11 import Pkcs11Module

    path = resolve_module(spec)
    with Pkcs11Module.load(path) as module, module.open_token(spec.selector) as session:
        yield session


def _flags_text(flags: dict[str, bool]) -> str:
    return ", ".join(k.replace("_", " ") for k, v in flags.items() if v) or "-"


@app.command("list")
def list_tokens(
    module: ModuleOpt = None,
    probe_timeout: ProbeTimeoutOpt = 15.0,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List PKCS#11 modules and the tokens in their slots (no login)."""
    out = Output(json=json, verbose=verbose, quiet=quiet, debug=debug)

    def body() -> int:
        from signkit.errors import TokenNotFoundError
        from signkit.tokens.access import TokenSpec, scan_modules

        scan = scan_modules(TokenSpec(module=module, probe_timeout=probe_timeout))
        report: list[dict[str, Any]] = [
            {
                "module": r.candidate.path,
                "source": r.candidate.source,
                "name": r.candidate.name,
                "error": r.error,
                "library": r.library,
                "tokens": [t.to_json() for t in r.tokens],
            }
            for r in scan.results
        ]
        if json:
            out.emit_json({"modules": report})
        if not quiet and not json:
            from rich.table import Table

            console = out.console()
            for entry in report:
                console.print(f"module {entry['module']} ({entry['source']})", markup=False)
                if entry["error"]:
                    console.print(f"  problem: {entry['error']}", style="yellow", markup=False)
                    continue
                if not entry["tokens"]:
                    console.print("  no token present", markup=False)
                    continue
                table = Table(box=None, pad_edge=False)
                for col in ("slot", "label", "manufacturer", "model", "serial", "flags"):
                    table.add_column(col)
                for t in entry["tokens"]:
                    table.add_row(
                        str(t["slot_id"]), t["label"], t["manufacturer"], t["model"],
                        t["serial"], _flags_text(t["flags"]),
                    )  # fmt: skip
                console.print(table)
        if not any(r.tokens for r in scan.results):
            raise TokenNotFoundError(
                "no token present in any module",
                subject="token",
                hint="plug the token in; for a vendor token pass --module /path/to/module.so",
            )
        return 0

    run_command(out, body)


@app.command("info")
def info(
    ctx: typer.Context,
    module: ModuleOpt = None,
    token_label: TokenLabelOpt = None,
    token_serial: TokenSerialOpt = None,
    slot: SlotOpt = None,
    key_uri: KeyUriOpt = None,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Show one token: identity, PIN state flags, signing mechanisms (no login)."""
    out = Output(json=json, verbose=verbose, quiet=quiet, debug=debug)

    def body() -> int:
        spec = build_token_spec(
            module=module, token_label=token_label, token_serial=token_serial, slot=slot,
            key_label=None, key_id=None, cert_fingerprint=None, key_uri=key_uri,
        )  # fmt: skip
        with _public_session(spec) as session:
            data: dict[str, Any] = session.info.to_json()
            data["library"] = session.module.library_info() if session.module else {}
            data["mechanisms"] = session.mechanism_names()
            data["certificates"] = len(session.certificates())
        if json:
            out.emit_json(data)
        else:
            out.info(f"{session.info.display_name()}")
            for key in ("module", "manufacturer", "model", "serial", "slot_description"):
                out.info(f"  {key.replace('_', ' ')}: {data[key]}")
            out.info(f"  flags: {_flags_text(data['flags'])}")
            out.info(f"  certificates: {data['certificates']}")
            out.info(f"  signing mechanisms: {', '.join(data['mechanisms']) or '-'}")
        return 0

    run_command(out, body)


@app.command("objects")
def objects(
    ctx: typer.Context,
    module: ModuleOpt = None,
    token_label: TokenLabelOpt = None,
    token_serial: TokenSerialOpt = None,
    slot: SlotOpt = None,
    key_uri: KeyUriOpt = None,
    login: Annotated[
        bool, typer.Option("--login", help="Log in to also list private keys and pairs.")
    ] = False,
    pin_file: PinFileOpt = None,
    pin_stdin: PinStdinOpt = False,
    pin_pad: PinPadOpt = False,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List certificates and keys on a token (certificates need no login)."""
    out = Output(json=json, verbose=verbose, quiet=quiet, debug=debug)
    state = get_state(ctx)

    def body() -> int:
        from signkit.tokens.guard import PinGuard, default_state_dir
        from signkit.tokens.pin import login as do_login

        spec = build_token_spec(
            module=module, token_label=token_label, token_serial=token_serial, slot=slot,
            key_label=None, key_id=None, cert_fingerprint=None, key_uri=key_uri,
            pin_file=pin_file, pin_stdin=pin_stdin, pin_pad=pin_pad, env_pin=state.env_pin,
        )  # fmt: skip
        with _public_session(spec) as session:
            if login:
                do_login(
                    token=session.info, spec=spec.pin, io=TerminalPinIO(),
                    guard=PinGuard(default_state_dir()), do_login=session.login,
                    refresh_flags=session.refresh_flags, warn=out.warn, keep_pin=False,
                )  # fmt: skip
            certs = session.certificates()
            publics = session.public_keys()
            pairs = session.pairs() if login else []
            token_name = session.name
        data = {
            "token": token_name,
            "certificates": [c.to_json() for c in certs],
            "public_keys": [k.to_json() for k in publics],
            "private_keys": [p.key.to_json() for p in pairs] if login else None,
            "pairs": [
                {
                    "key_label": p.key.label,
                    "key_id": p.key.id.hex(),
                    "cert_sha256": p.cert.sha256 if p.cert else None,
                    "paired_by": p.paired_by,
                }
                for p in pairs
            ],
        }
        if json:
            out.emit_json(data)
            return 0
        out.info(token_name)
        for c in certs:
            role = "CA certificate" if c.is_ca else "certificate"
            out.info(f"  {role} label={c.label!r} id={c.id.hex() or '-'}")
            out.info(f"    subject: {c.subject}")
            out.info(f"    issuer:  {c.issuer}")
            out.info(f"    serial:  {c.serial:x}")
            out.info(f"    valid:   {c.not_before:%Y-%m-%d} .. {c.not_after:%Y-%m-%d}")
            out.info(f"    sha256:  {c.sha256}")
            out.info(f"    usage:   {', '.join(c.key_usage + c.extended_key_usage) or '-'}")
        for k in publics:
            out.info(f"  public key label={k.label!r} id={k.id.hex() or '-'} "
                     f"{k.key_type} {k.key_size or '?'}")  # fmt: skip
        for p in pairs:
            k = p.key
            extra = ", always authenticate" if k.always_authenticate else ""
            cert = f"→ {p.cert.subject} (by {p.paired_by})" if p.cert else "→ no certificate"
            out.info(f"  private key label={k.label!r} id={k.id.hex() or '-'} "
                     f"{k.key_type} {k.key_size or '?'}{extra} {cert}")  # fmt: skip
        if not login:
            out.info("  (private keys are listed with --login)")
        return 0

    run_command(out, body)


@app.command("login")
def login_cmd(
    ctx: typer.Context,
    module: ModuleOpt = None,
    token_label: TokenLabelOpt = None,
    token_serial: TokenSerialOpt = None,
    slot: SlotOpt = None,
    key_uri: KeyUriOpt = None,
    pin_file: PinFileOpt = None,
    pin_stdin: PinStdinOpt = False,
    pin_pad: PinPadOpt = False,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Check the PIN with exactly one login (exit 0 or 4).

    Run interactively, a successful login also clears the unattended-login guard.
    """
    out = Output(json=json, verbose=verbose, quiet=quiet, debug=debug)
    state = get_state(ctx)

    def body() -> int:
        from signkit.tokens.guard import PinGuard, default_state_dir
        from signkit.tokens.pin import login as do_login

        spec = build_token_spec(
            module=module, token_label=token_label, token_serial=token_serial, slot=slot,
            key_label=None, key_id=None, cert_fingerprint=None, key_uri=key_uri,
            pin_file=pin_file, pin_stdin=pin_stdin, pin_pad=pin_pad, env_pin=state.env_pin,
        )  # fmt: skip
        with _public_session(spec) as session:
            result = do_login(
                token=session.info, spec=spec.pin, io=TerminalPinIO(),
                guard=PinGuard(default_state_dir()), do_login=session.login,
                refresh_flags=session.refresh_flags, warn=out.warn, keep_pin=False,
            )  # fmt: skip
            name = session.name
        if json:
            out.emit_json({"token": name, "login": "ok", "pin_source": result.source.value})
        else:
            out.info(f"{name}: PIN accepted ({result.source.value})")
        return 0

    run_command(out, body)


@app.command("clear-guard")
def clear_guard(
    ctx: typer.Context,
    module: ModuleOpt = None,
    token_label: TokenLabelOpt = None,
    token_serial: TokenSerialOpt = None,
    slot: SlotOpt = None,
    key_uri: KeyUriOpt = None,
    json: JsonOpt = False,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Allow unattended logins again on a token after a rejected PIN (no login)."""
    out = Output(json=json, verbose=verbose, quiet=quiet, debug=debug)

    def body() -> int:
        from signkit.tokens.guard import PinGuard, default_state_dir

        spec = build_token_spec(
            module=module, token_label=token_label, token_serial=token_serial, slot=slot,
            key_label=None, key_id=None, cert_fingerprint=None, key_uri=key_uri,
        )  # fmt: skip
        with _public_session(spec) as session:
            cleared = PinGuard(default_state_dir()).clear(session.info)
            name = session.name
        if json:
            out.emit_json({"token": name, "cleared": cleared})
        else:
            out.info(f"{name}: " + ("unattended logins allowed again" if cleared else "no block"))
        return 0

    run_command(out, body)
