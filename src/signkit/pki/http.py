"""HTTP for OCSP, CRL and AIA fetches, through the proxy the environment names.

Offices reach the CAs through a proxy: ``http_proxy``, ``https_proxy`` and
``no_proxy`` (or their upper-case forms) apply to every fetch, as they do to
the time-stamp client (``urllib`` reads them).
"""

from __future__ import annotations

from typing import Any


def fetcher_backend() -> Any:
    """pyHanko's aiohttp fetchers (OCSP, CRL, certificates by AIA) on a session
    that honours the proxy variables. aiohttp ignores them unless told
    (``trust_env``), and pyHanko's own session does not tell it."""
    import ssl

    import aiohttp
    import certifi
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers import AIOHttpFetcherBackend
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers.util import LazySession

    class ProxySession(LazySession):
        """Created in the event loop that first uses it, as pyHanko's is."""

        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]

        def get_session(self) -> aiohttp.ClientSession:
            if self._session is None:
                context = ssl.create_default_context(cafile=certifi.where())
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(ssl=context), trust_env=True
                )
            return self._session

    # A LazySession, not a ClientSession: the backend closes it when done.
    session: Any = ProxySession()
    return AIOHttpFetcherBackend(session=session)
