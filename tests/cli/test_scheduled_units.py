"""The shipped systemd units and cron line (contrib/): systemd-analyze verify
passes on them without a word, and their commands, run as the service
would run them (the PIN from $CREDENTIALS_DIRECTORY, the state in
StateDirectory=), sign with the test token and write their metrics."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from signkit.cli.manpages import write_manpages
from support.infra import REPO, SoftHsm, batch_of, pki_certificate
from support.pdfcheck import pdfsig

pytestmark = pytest.mark.softhsm

UNITS = REPO / "contrib" / "systemd"
CRON = REPO / "contrib" / "cron" / "signkit"
SIGNKIT = Path(sys.executable).with_name("signkit")


def unit_settings(path: Path) -> dict[str, list[str]]:
    """key -> values of a unit file, continuation lines joined."""
    settings: dict[str, list[str]] = {}
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "[")):
            continue
        key, _, value = line.partition("=")
        settings.setdefault(key, []).append(" ".join(value.split()))
    return settings


def test_systemd_analyze_verify_passes_without_a_word(tmp_path: Path) -> None:
    """systemd-analyze exits 0 even on an unknown key or a bad value (it only
    warns): every line it prints is a failure here. The one change made to the
    units is where signkit is installed; the manual pages they name are the
    build's."""
    shutil.copytree(UNITS, tmp_path / "units")
    for unit in (tmp_path / "units").glob("*.service"):
        unit.write_text(unit.read_text().replace("/usr/local/bin/signkit", str(SIGNKIT)))
    write_manpages(tmp_path / "man" / "man1")
    names = sorted(p.name for p in (tmp_path / "units").iterdir())
    assert names == [
        "signkit-cert-check.service", "signkit-cert-check.timer",
        "signkit-sign.service", "signkit-sign.timer",
    ]  # fmt: skip
    proc = subprocess.run(
        ["systemd-analyze", "verify", *(f"./{n}" for n in names)],
        capture_output=True, text=True, cwd=tmp_path / "units", check=False,
        env={**os.environ, "MANPATH": f"{tmp_path / 'man'}:"},
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr
    # and it does speak up: a mistyped value is caught
    bad = tmp_path / "units" / "signkit-sign.service"
    bad.write_text(bad.read_text().replace("Restart=on-failure", "Restart=on-failur"))
    proc = subprocess.run(
        ["systemd-analyze", "verify", "./signkit-sign.service"],
        capture_output=True, text=True, cwd=tmp_path / "units", check=False,
        env={**os.environ, "MANPATH": f"{tmp_path / 'man'}:"},
    )  # fmt: skip
    assert "on-failur" in proc.stderr


def test_the_units_follow_the_rules() -> None:
    sign = unit_settings(UNITS / "signkit-sign.service")
    assert sign["User"] == ["signkit"] and sign["StateDirectory"] == ["signkit"]
    assert sign["LoadCredential"] == ["pin:/etc/signkit/pin"]
    assert "--pin-file ${CREDENTIALS_DIRECTORY}/pin" in sign["ExecStart"][0]
    assert "XDG_STATE_HOME=%S" in sign["Environment"]
    assert not any("SIGNKIT_PIN" in v for values in sign.values() for v in values)
    # only the temporary condition (75) is retried; never a wrong PIN (4)
    prevented = sign["RestartPreventExitStatus"][0].split()
    assert "75" not in prevented and {"1", "2", "3", "4", "5", "70"} <= set(prevented)
    timer = unit_settings(UNITS / "signkit-sign.timer")
    assert timer["Persistent"] == ["true"] and timer["OnCalendar"]


@pytest.fixture
def site(tmp_path: Path, softhsm: SoftHsm) -> dict[str, Path]:
    """/etc/signkit, /srv/signkit and /var/lib of a host, under tmp_path."""
    root = tmp_path / "root.der"
    root.write_bytes(pki_certificate("root-ca"))
    config = tmp_path / "etc" / "config.toml"
    config.parent.mkdir()
    config.write_text(
        "[profiles.nightly]\n"
        f'module = "{softhsm.module}"\n'
        'token_label = "signkit-demo"\n'
        f'trust = ["{root}"]\n'
        'revocation = "off"\n'
    )
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / "pin").write_text(softhsm.user_pin + "\n")
    (credentials / "pin").chmod(0o400)
    (tmp_path / "srv" / "signed").mkdir(parents=True)
    batch_of(tmp_path / "srv" / "inbox", 3)
    (tmp_path / "var-lib" / "signkit").mkdir(parents=True, mode=0o700)
    (tmp_path / "textfile").mkdir()
    return {
        "/usr/local/bin/signkit": SIGNKIT,
        "${CREDENTIALS_DIRECTORY}": credentials,
        "/etc/signkit/config.toml": config,
        "/etc/signkit/pin": credentials / "pin",
        "/srv/signkit": tmp_path / "srv",
        "/var/lib/signkit": tmp_path / "var-lib" / "signkit",
        "/var/lib/prometheus/node-exporter": tmp_path / "textfile",
        "%S": tmp_path / "var-lib",
    }


def here(text: str, site: dict[str, Path]) -> str:
    for name, path in site.items():
        text = text.replace(name, str(path))
    return text


def run_service(
    unit: str, site: dict[str, Path], softhsm: SoftHsm
) -> subprocess.CompletedProcess[str]:
    """ExecStart= with the unit's Environment=, as systemd starts it (no
    terminal, no SIGNKIT_PIN), the host's paths moved under the test's."""
    settings = unit_settings(UNITS / unit)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNKIT_")}
    env.update(softhsm.env())
    for item in settings["Environment"]:
        key, _, value = here(item, site).partition("=")
        env[key] = value
    argv = shlex.split(here(settings["ExecStart"][0], site))
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False
    )


def test_the_sign_service_signs_with_the_pin_credential(
    site: dict[str, Path], softhsm: SoftHsm
) -> None:
    proc = run_service("signkit-sign.service", site, softhsm)
    assert proc.returncode == 0, proc.stderr
    signed = sorted((site["/srv/signkit"] / "signed").iterdir())
    assert [p.name for p in signed] == ["d000.pdf", "d001.pdf", "d002.pdf"]
    assert all("Signature is Valid" in pdfsig(p) for p in signed)
    state = site["/var/lib/signkit"]
    report = json.loads((state / "last-sign.json").read_text())
    assert report["status"] == "ok" and report["totals"]["signed"] == 3
    audit = state / "audit.jsonl"  # $XDG_STATE_HOME/signkit, XDG_STATE_HOME=%S: StateDirectory=
    assert audit.is_file() and "run-end" in audit.read_text()
    assert softhsm.user_pin not in audit.read_text() + proc.stderr + proc.stdout
    # the next night, nothing new: success in one line
    for doc in (site["/srv/signkit"] / "inbox").iterdir():
        doc.unlink()
    quiet = run_service("signkit-sign.service", site, softhsm)
    assert quiet.returncode == 0 and quiet.stderr.startswith("nothing to do: ")
    assert len(quiet.stderr.splitlines()) == 1


def test_the_cert_check_service_writes_metrics(site: dict[str, Path], softhsm: SoftHsm) -> None:
    proc = run_service("signkit-cert-check.service", site, softhsm)
    success = unit_settings(UNITS / "signkit-cert-check.service")["SuccessExitStatus"][0]
    assert proc.returncode == 0 or str(proc.returncode) in success.split(), proc.stderr
    metrics = (site["/var/lib/prometheus/node-exporter"] / "signkit.prom").read_text()
    assert "signkit_cert_days_left{" in metrics and "signkit_cert_check_success 1" in metrics


def test_the_cron_line(site: dict[str, Path], softhsm: SoftHsm) -> None:
    lines = [x for x in CRON.read_text().splitlines() if x.strip() and not x.startswith("#")]
    variables = dict(x.split("=", 1) for x in lines if "=" in x.split()[0])
    (job,) = [x for x in lines if "=" not in x.split()[0]]
    fields = job.split(None, 6)
    minute, hour, _day, _month, weekday, user, command = fields
    assert (minute, hour, weekday, user) == ("0", "18", "1-5", "signkit")
    assert "%" not in command  # cron turns % into a newline
    assert "SIGNKIT_PIN" not in CRON.read_text() and "--pin-file /etc/signkit/pin" in command
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNKIT_")}
    env.update(softhsm.env())
    env["SIGNKIT_CONFIG"] = here(variables["SIGNKIT_CONFIG"], site)
    env["XDG_STATE_HOME"] = str(site["%S"])
    argv = shlex.split(here(command, site))
    assert argv[0] == "signkit"
    proc = subprocess.run(
        [str(SIGNKIT), *argv[1:]], capture_output=True, text=True, env=env,
        stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # -q: a successful night mails only the summary line
    assert proc.stdout == "" and proc.stderr.splitlines() == [
        "3 signed, 0 skipped, 0 failed, 0 not attempted (of 3)"
    ]
