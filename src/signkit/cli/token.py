"""`signkit token …`: find tokens, keys and certificates; check the PIN."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .context import Output, TerminalPinIO, get_state, run_command
from .framework import command, grouped, new_app
from .options import ConfigOptions, ModuleOptions, OutputOptions, PinOptions, TokenOptions

if TYPE_CHECKING:
    from signkit.tokens.access import TokenSpec
    from signkit.tokens.pin import LoginResult
    from signkit.tokens.pkcs11 import TokenSession


app = new_app("token", "Find tokens, keys and certificates; check the PIN.", no_args_is_help=True)


@app.callback()
def group() -> None:
    """Find tokens, keys and certificates; check the PIN."""


@contextmanager
def _public_session(spec: TokenSpec) -> Iterator[TokenSession]:
    from signkit.tokens.access import open_token_session, resolve_module

    with open_token_session(resolve_module(spec), spec.selector) as session:
        yield session


def _login(session: TokenSession, spec: TokenSpec, out: Output) -> LoginResult:
    """The one login of a token command, with every PIN-safety rule."""
    from signkit.tokens.access import locked_login
    from signkit.tokens.guard import PinGuard, default_state_dir
    from signkit.tokens.pin import login

    return login(
        token=session.info,
        spec=spec.pin,
        io=TerminalPinIO(),
        guard=PinGuard(default_state_dir()),
        do_login=locked_login(session),
        refresh_flags=session.refresh_flags,
        warn=out.warn,
        keep_pin=False,
    )


def _flags_text(flags: dict[str, bool]) -> str:
    from signkit.tokens.model import TokenFlags

    return ", ".join(TokenFlags(**flags).describe()) or "-"


def _spec(token: TokenOptions, pin: PinOptions | None = None, **extra: Any) -> TokenSpec:
    from .tokenspec import build_token_spec

    return build_token_spec(token=token, pin=pin, **extra)


@command(app, "list")
@grouped
def list_tokens(
    *,
    module: ModuleOptions,
    probe_timeout: Annotated[
        float,
        typer.Option(
            "--probe-timeout",
            min=0.5,
            metavar="SECONDS",
            help="Seconds a module may take to answer before it is reported as hung.",
        ),
    ] = 15.0,
    config: ConfigOptions,
    output: OutputOptions,
) -> None:
    """List PKCS#11 modules and the tokens in their slots (no login)."""
    out = Output.of(output)
    json = out.json

    def body() -> int:
        from signkit.errors import TokenAbsentError
        from signkit.tokens.access import TokenSpec, scan_modules

        scan = scan_modules(TokenSpec(module=module.module, probe_timeout=probe_timeout))
        report: list[dict[str, Any]] = [
            {
                "module": r.candidate.path,
                "source": r.candidate.source,
                "name": r.candidate.name,
                "error": r.error,
                "library": r.library,
                "tokens": [
                    {
                        **t.to_json(),
                        "usable": t.flags.usable
                        and (t.slot_id not in r.objects or bool(r.objects[t.slot_id].certificates)),
                        "certificates": (
                            len(r.objects[t.slot_id].certificates)
                            if t.slot_id in r.objects
                            else None
                        ),
                    }
                    for t in r.tokens
                ],
            }
            for r in scan.results
        ]
        if json:
            out.emit_json({"modules": report})
        else:
            from rich.table import Table

            for entry in report:
                out.result(f"module {entry['module']} ({entry['source']})")
                if entry["error"]:
                    out.result(f"  problem: {entry['error']}")
                    continue
                if not entry["tokens"]:
                    out.result("  no token present")
                    continue
                table = Table(box=None, pad_edge=False)
                for col in ("slot", "label", "manufacturer", "model", "serial", "certs", "flags"):
                    table.add_column(col)
                for t in entry["tokens"]:
                    flags = _flags_text(t["flags"])
                    if not t["usable"]:
                        # What discovery skips when it picks a module.
                        flags += " (cannot sign: skipped when choosing a module)"
                    table.add_row(
                        str(t["slot_id"]),
                        t["label"],
                        t["manufacturer"],
                        t["model"],
                        t["serial"],
                        "-" if t["certificates"] is None else str(t["certificates"]),
                        flags,
                    )
                out.table(table)
        if not any(r.tokens for r in scan.results):
            raise TokenAbsentError(
                "no token present in any module",
                subject="token",
                hint="plug the token in; for a vendor token pass --module /path/to/module.so",
            )
        return 0

    run_command(out, body)


@command(app, "info")
@grouped
def info(*, token: TokenOptions, config: ConfigOptions, output: OutputOptions) -> None:
    """Show one token: identity, PIN state flags, signing mechanisms (no login)."""
    out = Output.of(output)
    json = out.json

    def body() -> int:
        spec = _spec(token)
        with _public_session(spec) as session:
            data: dict[str, Any] = session.info.to_json()
            data["library"] = session.module.library_info() if session.module else {}
            data["mechanisms"] = session.signing_mechanism_names()
            data["certificates"] = len(session.certificates())
        if json:
            out.emit_json(data)
        else:
            out.result(session.info.display_name())
            for key in ("module", "manufacturer", "model", "serial", "slot_description"):
                out.result(f"  {key.replace('_', ' ')}: {data[key]}")
            out.result(f"  flags: {_flags_text(data['flags'])}")
            low, high = data["pin_min"] or "?", data["pin_max"] or "?"
            if (low, high) != ("?", "?"):
                out.result(f"  PIN length: {low} to {high}")
            out.result(f"  certificates: {data['certificates']}")
            out.result(f"  signing mechanisms: {', '.join(data['mechanisms']) or '-'}")
        return 0

    run_command(out, body)


@command(app, "objects")
@grouped
def objects(
    ctx: typer.Context,
    *,
    token: TokenOptions,
    login: Annotated[
        bool, typer.Option("--login", help="Log in to also list private keys and pairs.")
    ] = False,
    pin: PinOptions,
    config: ConfigOptions,
    output: OutputOptions,
) -> None:
    """List certificates and keys on a token (certificates need no login)."""
    out = Output.of(output)
    json = out.json
    state = get_state(ctx)

    def body() -> int:
        from signkit.tokens.uri import object_uri

        spec = _spec(token, pin, env_pin=state.env_pin)
        with _public_session(spec) as session:
            if login:
                _login(session, spec, out)
            certs = session.certificates()
            publics = session.public_keys()
            pairs = session.pairs() if login else []
            token_name = session.name
            info = session.info

        def uri(label: str, key_id: bytes, kind: str) -> str:
            return object_uri(info, label=label, key_id=key_id, object_type=kind)

        data = {
            "token": token_name,
            "certificates": [{**c.to_json(), "uri": uri(c.label, c.id, "cert")} for c in certs],
            "public_keys": [{**k.to_json(), "uri": uri(k.label, k.id, "public")} for k in publics],
            "private_keys": [
                {**p.key.to_json(), "uri": uri(p.key.label, p.key.id, "private")} for p in pairs
            ]
            if login
            else None,
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
        out.result(token_name)
        for c in certs:
            role = "CA certificate" if c.is_ca else "certificate"
            out.result(f"  {role} label={c.label!r} id={c.id.hex() or '-'}")
            out.result(f"    uri:     {uri(c.label, c.id, 'cert')}")
            out.result(f"    subject: {c.subject}")
            out.result(f"    issuer:  {c.issuer}")
            out.result(f"    serial:  {c.serial:x}")
            out.result(f"    valid:   {c.not_before:%Y-%m-%d} .. {c.not_after:%Y-%m-%d}")
            out.result(f"    sha256:  {c.sha256}")
            out.result(f"    usage:   {', '.join(c.key_usage + c.extended_key_usage) or '-'}")
        for k in publics:
            out.result(
                f"  public key label={k.label!r} id={k.id.hex() or '-'} "
                f"{k.key_type} {k.key_size or '?'}"
            )
            out.result(f"    uri:     {uri(k.label, k.id, 'public')}")
        for p in pairs:
            k = p.key
            extra = ", always authenticate" if k.always_authenticate else ""
            cert = f"→ {p.cert.subject} (by {p.paired_by})" if p.cert else "→ no certificate"
            out.result(
                f"  private key label={k.label!r} id={k.id.hex() or '-'} "
                f"{k.key_type} {k.key_size or '?'}{extra} {cert}"
            )
            out.result(f"    uri:     {uri(k.label, k.id, 'private')}")
        if not login:
            out.info("(private keys are listed with --login)")
        return 0

    run_command(out, body)


@command(app, "login")
@grouped
def login_cmd(
    ctx: typer.Context,
    *,
    token: TokenOptions,
    pin: PinOptions,
    config: ConfigOptions,
    output: OutputOptions,
) -> None:
    """Check the PIN with exactly one login (exit 0 or 4).

    Run interactively, a successful login also clears the unattended-login guard.
    """
    out = Output.of(output)
    json = out.json
    state = get_state(ctx)

    def body() -> int:
        spec = _spec(token, pin, env_pin=state.env_pin)
        with _public_session(spec) as session:
            result = _login(session, spec, out)
            name = session.name
        if json:
            out.emit_json({"token": name, "login": "ok", "pin_source": result.source.value})
        else:
            out.summary(f"{name}: PIN accepted ({result.source.value})")
        return 0

    run_command(out, body)


@command(app, "clear-guard")
@grouped
def clear_guard(*, token: TokenOptions, config: ConfigOptions, output: OutputOptions) -> None:
    """Allow unattended logins again on a token after a rejected PIN (no login)."""
    out = Output.of(output)
    json = out.json

    def body() -> int:
        from signkit.tokens.guard import PinGuard, default_state_dir

        spec = _spec(token)
        with _public_session(spec) as session:
            cleared = PinGuard(default_state_dir()).clear(session.info)
            name = session.name
        if json:
            out.emit_json({"token": name, "cleared": cleared})
        else:
            out.summary(
                f"{name}: " + ("unattended logins allowed again" if cleared else "no block")
            )
        return 0

    run_command(out, body)
