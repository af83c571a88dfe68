"""CMS SignedData: the container PDFs embed (``container``) and CAdES
signatures of any file, detached (.p7s) or attached (.p7m)."""
