"""PAdES signing of PDFs, as a format of the signing pipeline, by stage:

- ``options``: the settings of one signature, resolved and validated;
- ``presets``: document layouts as data (Decree 30/2020 appearances);
- ``anchor``: where text sits on a page (placement by text);
- ``decree30``: layouts that read the document (blanks, the seal's place);
- ``appearance``: the visible signature's appearance stream;
- ``prepare`` (worker): placeholder, /ByteRange digest, signed attributes;
- ``finish`` (worker): CMS, time-stamp, DSS, document time-stamp, self-check;
- ``resume``: whether an existing output is already done;
- ``plugin``: ``PdfFormat``, what the pipeline (jobs/signing.py) calls.
"""

from signkit.formats.pdf.options import EXTENSIONS, LEVELS, PdfDocOptions, resolve_options
from signkit.formats.pdf.plugin import PdfFormat

__all__ = ["EXTENSIONS", "LEVELS", "PdfDocOptions", "PdfFormat", "resolve_options"]
