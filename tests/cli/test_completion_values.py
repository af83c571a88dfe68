"""Shell completion of values, as the script of `signkit completion bash`
asks at each TAB: preset names (built in and configured), trust bundle
names, token labels read from the module without logging in."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.infra import SoftHsm, spy_calls, spy_module
from support.runner import Runner

pytestmark = pytest.mark.softhsm


def complete(signkit: Runner, words: str, env: dict[str, str]) -> set[str]:
    proc = signkit(
        env={
            "_SIGNKIT_COMPLETE": "complete_bash",
            "COMP_WORDS": words,
            "COMP_CWORD": str(len(words.split(" ")) - 1),
            **env,
        }
    )
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_presets_bundles_and_token_labels(
    signkit: Runner, softhsm: SoftHsm, tmp_path: Path
) -> None:
    config_home = tmp_path / "config"
    trust = config_home / "signkit" / "trust"
    (trust / "vn-gov").mkdir(parents=True)
    (trust / "vn-public.pem").write_text("")
    (trust / "notes.txt").write_text("not a bundle")
    (config_home / "signkit" / "config.toml").write_text(
        '[pdf-presets.so-van-ban]\nsummary = "ours"\nplacement = "corner"\n'
        "[pdf-presets.so-van-ban.options]\ntext = 'Số'\n"
        '[xml-presets.cong-van]\nparent_path = ["congVan"]\n'
    )
    env = {"XDG_CONFIG_HOME": str(config_home)}
    assert complete(signkit, "signkit sign pdf --preset nd30-n", env) == {
        "nd30-number", "nd30-number-date",
    }  # fmt: skip
    assert complete(signkit, "signkit sign pdf --preset so", env) == {"so-van-ban"}
    assert complete(signkit, "signkit sign xml --preset ", env) == {
        "vn-einvoice", "vn-tax-declaration", "vn-edxml", "cong-van",
    }  # fmt: skip
    assert complete(signkit, "signkit verify x.pdf --trust vn-", env) == {"vn-gov", "vn-public"}
    assert complete(signkit, "signkit cert check --trust ", env) == {"vn-gov", "vn-public"}
    # the bundle commands' NAME
    assert complete(signkit, "signkit trust show vn-", env) == {"vn-gov", "vn-public"}
    assert complete(signkit, "signkit trust remove vn-g", env) == {"vn-gov"}

    log = tmp_path / "spy.log"
    spy = {"PKCS11SPY": softhsm.module, "PKCS11SPY_OUTPUT": str(log)}
    labels = complete(
        signkit,
        "signkit token info --token-label signkit-t",
        {**env, **spy, "SIGNKIT_MODULE": spy_module()},
    )
    assert labels == {"signkit-test-a", "signkit-test-b", "signkit-test-c"}
    calls = [name for name, _ in spy_calls(log)]
    assert "C_GetTokenInfo" in calls and "C_Login" not in calls  # read without login
    by_option = complete(
        signkit,
        f"signkit sign pdf x.pdf --module {softhsm.module} --token-label signkit-d",
        {**env, "SIGNKIT_MODULE": ""},
    )
    assert by_option == {"signkit-demo"}
