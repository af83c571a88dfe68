"""`signkit token …` as users and cron run it: exit codes, messages, no PIN anywhere."""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signkit import __version__
from support.infra import SoftHsm, spy_calls, spy_module
from support.runner import Runner

pytestmark = pytest.mark.softhsm

WRONG_PIN = "904417"


def spy_env(softhsm: SoftHsm, log: Path) -> dict[str, str]:
    return {"PKCS11SPY": softhsm.module, "PKCS11SPY_OUTPUT": str(log)}


def logins(log: Path) -> list[str]:
    return [block for name, block in spy_calls(log) if name == "C_Login"]


def assert_no_pin(pin: str, *texts: str) -> None:
    for text in texts:
        assert pin not in text


def test_version_and_help_show_exit_codes(signkit: Runner) -> None:
    assert signkit("--version").stdout.strip() == f"signkit {__version__}"
    help_text = " ".join(signkit("--help").stdout.split())
    assert "Exit codes" in help_text and "4 token or PIN error" in help_text


def test_list_human_and_json(signkit: Runner, softhsm: SoftHsm) -> None:
    proc = signkit("token", "list", "--module", softhsm.module)
    assert proc.returncode == 0, proc.stderr
    # the listing is what was asked for: stdout (`token list 2>/dev/null` keeps it)
    assert "signkit-test-a" in proc.stdout and "login required" in proc.stdout
    assert proc.stderr == ""
    proc = signkit("token", "list", "--module", softhsm.module, "--json")
    assert "signkit-test-a" not in proc.stderr  # --json replaces the table
    data = json.loads(proc.stdout)
    labels = {t["label"] for m in data["modules"] for t in m["tokens"]}
    assert {"signkit-demo", "signkit-test-a", "signkit-test-b", "signkit-test-c"} <= labels


def test_common_flags_on_every_subcommand(signkit: Runner, softhsm: SoftHsm) -> None:
    common = ["--json", "-v", "--debug", "--module", softhsm.module]
    sel = ["--token-label", "signkit-demo"]
    for args in (["list"], ["info", *sel], ["objects", *sel], ["clear-guard", *sel]):
        proc = signkit("token", *args, *common)
        assert proc.returncode == 0, (args, proc.stderr)
        json.loads(proc.stdout)
    proc = signkit("token", "login", *sel, *common, env={"SIGNKIT_PIN": softhsm.user_pin})
    assert proc.returncode == 0 and json.loads(proc.stdout)["login"] == "ok"


def test_info_shows_mechanisms(signkit: Runner, softhsm: SoftHsm) -> None:
    proc = signkit(
        "token", "info", "--module", softhsm.module, "--token-label", "signkit-demo", "--json"
    )
    data = json.loads(proc.stdout)
    assert "SHA256_RSA_PKCS" in data["mechanisms"] and data["flags"]["login_required"]
    raw = signkit(
        "token",
        "info",
        "--module",
        softhsm.module,
        "--token-label",
        "signkit-demo",
        "--json",
        rawonly=True,
    )
    assert json.loads(raw.stdout)["mechanisms"] == ["RSA_PKCS", "ECDSA"]


def test_objects_lists_vietnamese_labels_without_login(signkit: Runner, softhsm: SoftHsm) -> None:
    proc = signkit(
        "token", "objects", "--module", softhsm.module, "--token-label", "signkit-test-a"
    )
    assert proc.returncode == 0
    assert "Nguyễn Văn An's Test-CA SHA2 Certificate" in proc.stdout
    assert "UID=MST:0100000000-999" in proc.stdout
    assert proc.stderr == "(private keys are listed with --login)\n"


def test_objects_with_login_pairs_keys(signkit: Runner, softhsm: SoftHsm) -> None:
    proc = signkit(
        "token",
        "objects",
        "--module",
        softhsm.module,
        "--token-label",
        "signkit-test-c",
        "--login",
        "--json",
        env={"SIGNKIT_PIN": softhsm.user_pin},
    )
    assert proc.returncode == 0, proc.stderr
    pairs = {p["key_id"]: p["paired_by"] for p in json.loads(proc.stdout)["pairs"]}
    assert pairs["25"] == "public-key" and pairs["21"] == "id"


def test_wrong_pin_means_exactly_one_login_and_no_pin_leak(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path
) -> None:
    log = tmp_path / "spy.log"
    proc = signkit(
        "token",
        "login",
        "--module",
        spy_module(),
        "--token-label",
        "signkit-test-b",
        "--debug",
        env={"SIGNKIT_PIN": WRONG_PIN, **spy_env(softhsm, log)},
    )
    assert proc.returncode == 4
    assert "error: token 'signkit-test-b'" in proc.stderr and "PIN rejected" in proc.stderr
    assert "hint: signkit never retries a PIN" in proc.stderr
    assert len(logins(log)) == 1
    assert_no_pin(WRONG_PIN, proc.stdout, proc.stderr)
    for name, block in spy_calls(log):
        if name != "C_Login":
            assert WRONG_PIN not in block
    assert "Traceback" in proc.stderr  # --debug shows where, but never the PIN


def test_unattended_guard_blocks_cron_after_a_wrong_pin(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path, state_dir: Path
) -> None:
    base = ["--module", spy_module(), "--token-label", "signkit-test-c"]
    log1, log2, log3 = tmp_path / "1.log", tmp_path / "2.log", tmp_path / "3.log"
    first = signkit(
        "token", "login", *base, env={"SIGNKIT_PIN": WRONG_PIN, **spy_env(softhsm, log1)}
    )
    # The first rejection already says that the token is now blocked for
    # unattended runs, for which account, and how to lift it.
    assert first.returncode == 4
    text = " ".join(first.stderr.split())
    user = pwd.getpwuid(os.getuid()).pw_name
    assert f"unattended logins on this token are now blocked for user {user}," in text
    assert f"hint: signkit never retries a PIN: check the PIN source, then as user {user}" in text
    assert "`signkit token login --token-label signkit-test-c`" in text
    assert f"(the block is kept in {state_dir / 'signkit' / 'pin-guard'})" in text
    (clear_command,) = re.findall(r"`(signkit token clear-guard [^`]+)`", text)
    second = signkit(
        "token", "login", *base, env={"SIGNKIT_PIN": softhsm.user_pin, **spy_env(softhsm, log2)}
    )
    assert second.returncode == 4 and "blocked since" in second.stderr
    assert f"for user {user}, after a rejected PIN (env)" in second.stderr
    assert "clear-guard" in second.stderr
    assert logins(log2) == []  # the token was not touched
    # the command the message gave, as a person would paste it
    cleared = signkit(*shlex.split(clear_command)[1:], "--module", softhsm.module)
    assert cleared.returncode == 0 and "allowed again" in cleared.stderr  # a summary
    third = signkit(
        "token", "login", *base, env={"SIGNKIT_PIN": softhsm.user_pin, **spy_env(softhsm, log3)}
    )
    assert third.returncode == 0, third.stderr
    assert len(logins(log3)) == 1


def test_pin_file_and_stdin(signkit: Runner, softhsm: SoftHsm, tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text(softhsm.user_pin + "\n")
    pin_file.chmod(0o600)
    base = ["token", "login", "--module", softhsm.module, "--token-label", "signkit-demo"]
    proc = signkit(*base, "--pin-file", str(pin_file))
    assert proc.returncode == 0 and "PIN accepted (file)" in proc.stderr
    proc = signkit(*base, "--pin-stdin", input=softhsm.user_pin + "\n")
    assert proc.returncode == 0 and "PIN accepted (stdin)" in proc.stderr
    proc = signkit(*base, "--pin-stdin", "--pin-file", str(pin_file))
    assert proc.returncode == 2 and "choose one of" in proc.stderr
    missing = signkit(*base, "--pin-file", str(tmp_path / "absent"))
    assert missing.returncode == 3 and "PIN file not found" in missing.stderr


def test_no_pin_source_off_a_terminal(signkit: Runner, softhsm: SoftHsm) -> None:
    proc = signkit("token", "login", "--module", softhsm.module, "--token-label", "signkit-demo")
    assert proc.returncode == 4
    assert "no PIN source" in proc.stderr and "SIGNKIT_PIN" in proc.stderr


def test_no_pin_option_in_argv(signkit: Runner, softhsm: SoftHsm) -> None:
    proc = signkit("token", "login", "--module", softhsm.module, "--pin", "1234")
    assert proc.returncode == 2
    proc = signkit(
        "token",
        "login",
        "--module",
        softhsm.module,
        "--key",
        f"pkcs11:token=signkit-demo?pin-value={WRONG_PIN}",
    )
    assert proc.returncode == 2 and "command line" in proc.stderr
    assert_no_pin(WRONG_PIN, proc.stdout, proc.stderr)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"pkcs11:token=a;token=b?pin-value={WRONG_PIN}", "would put the PIN on the command line"),
        (f"pkcs11:pin-value={WRONG_PIN}", "would put the PIN on the command line"),
        (f"pkcs11:token=a?pin-value={WRONG_PIN}&pin-value=1", "would put the PIN on the command"),
        (f"pkcs11:token=a;token=b?pin-source=/run/{WRONG_PIN}", "attribute 'token' given twice"),
        (f"pkcs11:object=%zz?pin-source=/run/{WRONG_PIN}", "bad percent-encoding in 'object'"),
        (f"pkcs11:colour=red?pin-source=/run/{WRONG_PIN}", "misplaced attribute 'colour'"),
        (f"pkcs11:token=a?module-path=/x.so&pin-source=/run/{WRONG_PIN}", "module-path differ"),
    ],
)
def test_a_malformed_uri_never_shows_the_pin(
    signkit: Runner, softhsm: SoftHsm, uri: str, message: str
) -> None:
    """Regression: the whole URI, pin-value included, was quoted in the error.
    The raw output is searched, with --debug (tracebacks), --json and in Vietnamese."""
    for extra, lang in (([], "C"), (["--debug"], "C"), (["--json"], "C"), ([], "vi_VN.UTF-8")):
        proc = signkit(
            "token", "login", "--module", softhsm.module, "--key", uri, *extra, env={"LANG": lang}
        )
        assert proc.returncode == 2, proc.stderr
        assert ("\nerror: " if lang == "C" else "\nlỗi: ") in "\n" + proc.stderr, proc.stderr
        assert lang != "C" or message in proc.stderr, proc.stderr
        assert_no_pin(WRONG_PIN, proc.stdout, proc.stderr)


def test_missing_module_and_absent_token(signkit: Runner, softhsm: SoftHsm) -> None:
    proc = signkit("token", "list", "--module", "/opt/vendor/libnothere.so")
    assert proc.returncode == 4
    assert proc.stderr.startswith("error: PKCS#11 module /opt/vendor/libnothere.so: file does")
    assert "hint:" in proc.stderr and "Traceback" not in proc.stderr
    proc = signkit("token", "info", "--module", softhsm.module, "--token-label", "USB-Token-X")
    assert proc.returncode == 4
    assert "no token matches --token-label 'USB-Token-X'" in proc.stderr
    assert "signkit-demo" in proc.stderr and "hint: plug the token in" in proc.stderr


def test_ambiguous_selection_lists_tokens(signkit: Runner, softhsm: SoftHsm) -> None:
    proc = signkit("token", "info", "--module", softhsm.module)
    assert proc.returncode == 4 and "tokens match" in proc.stderr
    assert "--token-label" in proc.stderr


def test_locked_token_flag_stops_before_c_login(
    softhsm: SoftHsm, tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SoftHSM never locks: the flag is injected where the token layer reads it."""
    import signkit.tokens.pkcs11 as p11
    from signkit.cli.app import app
    from signkit.cli.context import AppState
    from signkit.tokens.pin import Pin

    log = tmp_path / "spy.log"
    monkeypatch.setenv("PKCS11SPY", softhsm.module)
    monkeypatch.setenv("PKCS11SPY_OUTPUT", str(log))
    real = p11._flags
    for flag, message, code in (
        (0x00040000, "PIN locked; no login attempted", 4),  # CKF_USER_PIN_LOCKED
        (0x00020000, "one PIN try left", 4),  # CKF_USER_PIN_FINAL_TRY
    ):
        monkeypatch.setattr(p11, "_flags", lambda raw, f=flag: real(raw | f))
        result = CliRunner().invoke(
            app,
            ["token", "login", "--module", spy_module(), "--token-label", "signkit-demo"],
            obj=AppState(env_pin=Pin(softhsm.user_pin)),
        )
        assert result.exit_code == code
        assert message in result.output
        assert logins(log) == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_script(signkit: Runner, shell: str) -> None:
    proc = signkit("completion", shell)
    assert proc.returncode == 0 and "_SIGNKIT_COMPLETE" in proc.stdout


def test_objects_print_rfc7512_uris_ready_for_key(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path
) -> None:
    """Each object's pkcs11: URI, pasted into --key, selects that object's key:
    here the certificate whose label is Vietnamese with an apostrophe and
    spaces, and whose key has another label (key-vn)."""
    from support.pdfcheck import pdfsig
    from support.verifydocs import sample

    sel = ["--module", softhsm.module, "--token-label", "signkit-test-a"]
    proc = signkit("token", "objects", *sel)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    label = "Nguyễn Văn An's Test-CA SHA2 Certificate"
    at = next(n for n, line in enumerate(lines) if f"label={label!r}" in line)
    uri_line = lines[at + 1].split()
    assert uri_line[0] == "uri:"
    uri = uri_line[1]
    assert uri.startswith("pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=")
    assert uri.endswith(
        ";token=signkit-test-a;id=%02;object=Nguy%E1%BB%85n%20V%C4%83n%20An%27s%20Test-CA"
        "%20SHA2%20Certificate;type=cert"
    )
    data = json.loads(signkit("token", "objects", *sel, "--json").stdout)
    assert uri in {c["uri"] for c in data["certificates"]}
    with_keys = signkit(
        "token", "objects", *sel, "--login", "--json", env={"SIGNKIT_PIN": softhsm.user_pin}
    )
    private = {k["label"]: k["uri"] for k in json.loads(with_keys.stdout)["private_keys"]}
    assert private["key-vn"].endswith(";token=signkit-test-a;id=%02;object=key-vn;type=private")

    for chosen in (uri, private["key-vn"]):
        out = tmp_path / f"{len(chosen)}.pdf"
        signed = signkit(
            "sign", "pdf", str(sample(tmp_path / "in")), "-o", str(out), "--key", chosen,
            "--module", softhsm.module, "--revocation", "off", "--no-audit",
            env={"SIGNKIT_PIN": softhsm.user_pin},
        )  # fmt: skip
        assert signed.returncode == 0, signed.stderr
        report = pdfsig(out)
        assert "Signature is Valid" in report and "Nguyễn Văn An" in report, report
