"""XML signatures (XMLDSig, XAdES): one core for signing, its self-check and ``verify``.

By stage:

- ``parse``: the one safe parser and its limits (size, depth, DTD policy), Ids;
- ``c14n``: canonical XML of node-sets, where they stand in their document;
- ``references``: dereferencing and transforms of a Reference;
- ``algorithms``: algorithm identifiers, digests, signature values;
- ``core``: core validation of one ds:Signature (value, references, manifests);
- ``coverage``: what a signature covers, by position and namespace, and wrapping;
- ``xades``: XAdES properties, written and read, and time-stamp inputs;
- ``options``, ``presets``: what ``sign xml`` is told, and the built-in layouts;
- ``layout``, ``splice``: where a signature goes and how it enters the bytes;
- ``batch``: what crosses between the main process and the workers (light);
- ``sign``: the signing stages, the verifier's check of each output, resume;
- ``plugin``: the format as the signing pipeline sees it.

``signkit.verify.xml`` turns what ``core`` establishes into verdicts.
"""


def worker_warmup() -> None:
    """Import the XML stack ahead of the first document (see sign.worker_warmup)."""
    from signkit.formats.xml.sign import worker_warmup as warm

    warm()
