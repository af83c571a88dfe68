"""Revocation evidence a long-term signature carries (PAdES B-LT, XAdES B-LT).

The evidence itself is gathered by the chain validator (``check_signer``
fetches OCSP responses and CRLs before signing); this module assembles what a
signature embeds: the signer's and the TSA's chains and their answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from signkit.pki.anchors import TrustSpec
from signkit.pki.chain import SignerCheck, check_signer


def ltv_material(
    check: SignerCheck,
    tsa_token: Any | None,
    spec: TrustSpec,
    *,
    run_check: Callable[..., SignerCheck] | None = None,
) -> tuple[tuple[bytes, ...], tuple[bytes, ...], tuple[bytes, ...]]:
    """(certificates, OCSP responses, CRLs) a long-term signature carries: the
    signer's chain and revocation evidence and, given a time-stamp token, the
    TSA's (its certificate checked now, by ``run_check``: check_signer or a
    call of it in a worker), each item once."""
    from signkit.pki.timestamps import tsa_certificates

    certs, ocsps, crls = check.chain, check.ocsp_responses, check.crls
    if tsa_token is not None:
        tsa_cert, tsa_others = tsa_certificates(tsa_token)
        if tsa_cert is not None:
            tsa = (run_check or check_signer)(
                tsa_cert, tsa_others + check.chain, spec, require_signing_usage=False
            )
            certs, ocsps, crls = certs + tsa.chain, ocsps + tsa.ocsp_responses, crls + tsa.crls
    return tuple(dict.fromkeys(certs)), tuple(dict.fromkeys(ocsps)), tuple(dict.fromkeys(crls))
