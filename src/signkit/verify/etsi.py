"""ETSI TS 119 102-2 validation reports for PDF signatures (pyHanko's `etsi` extra).

pyHanko writes the report for its AdES result; the status in it is replaced
by signkit's verdict, so the XML never says PASSED where signkit said
otherwise (a forbidden change after signing is not part of pyHanko's AdES
status). XML signatures have no such report here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from signkit.errors import ConfigError
from signkit.verify.verdict import Indication, SubIndication

_MAIN = {
    Indication.PASSED: "urn:etsi:019102:mainindication:total-passed",
    Indication.FAILED: "urn:etsi:019102:mainindication:total-failed",
    Indication.INDETERMINATE: "urn:etsi:019102:mainindication:indeterminate",
}
# Not in EN 319 102-1: named under signkit's own URN rather than passed off as ETSI's.
_OWN = {SubIndication.MODIFIED_AFTER_SIGNING, SubIndication.WRAPPED_SIGNED_ELEMENT}


def available() -> None:
    """Fail early (exit 5) when the report cannot be written."""
    try:
        import xsdata  # noqa: F401
        from pyhanko.sign.validation.report import tools  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--report-format etsi needs pyHanko's 'etsi' extra (xsdata)",
            hint="pip install 'pyhanko[etsi]'",
        ) from None


def signature_part(
    embedded_sig: Any, result: Any, indication: Indication, sub: SubIndication
) -> tuple[Any, list[Any]]:
    """One signature's report and its validation objects, with signkit's verdict."""
    from pyhanko.generated.etsi import ts_11910202
    from pyhanko.sign.validation.report.tools import _generate_report, _package_validation_object

    report = _generate_report(embedded_sig, result)
    prefix = "urn:signkit:subindication:" if sub in _OWN else "urn:etsi:019102:subindication:"
    status = ts_11910202.ValidationStatusType(
        main_indication=_MAIN[indication],
        sub_indication=() if sub is SubIndication.OK else (f"{prefix}{sub.value}",),
    )
    report = dataclasses.replace(report, signature_validation_status=status)
    objects = [_package_validation_object(vo) for vo in result.validation_objects]
    return report, objects


def write_report(parts: Sequence[tuple[Any, list[Any]]], path: Path) -> None:
    """One ValidationReport with every PDF signature of the run, written atomically."""
    from pyhanko.generated.etsi import ts_11910202
    from pyhanko.sign.validation.report.tools import NAMESPACES
    from xsdata.formats.dataclass.serializers import XmlSerializer
    from xsdata.formats.dataclass.serializers.config import SerializerConfig

    objects: dict[str, Any] = {}
    for _, objs in parts:
        for obj in objs:
            objects.setdefault(obj.id, obj)
    report = ts_11910202.ValidationReport(
        signature_validation_report=tuple(r for r, _ in parts),
        signature_validation_objects=ts_11910202.ValidationObjectListType(tuple(objects.values())),
    )
    text = XmlSerializer(config=SerializerConfig(indent="  ")).render(report, ns_map=NAMESPACES)
    from signkit.errors import OutputError
    from signkit.fsio import atomic_write

    try:
        atomic_write(path, text.encode("utf-8"))
    except OSError as exc:
        raise OutputError(
            f"cannot write the report ({exc.strerror or exc})", subject=str(path)
        ) from None
