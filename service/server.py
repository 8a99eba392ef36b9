"""The HTTP server: waitress, set up so that abusive clients cannot starve the others.

One definition for ``vo-clip serve`` and the tests' live server, so what the tests
check is what runs. Waitress' defaults suit a server behind a buffering proxy; exposed
directly, 100 idle sockets (its connection limit) or a few half-sent requests keep
every later client waiting for two minutes (its idle timeout). Here:

- the connection limit is high (``connection_limit``, with ``poll()`` instead of
  ``select()``, which fails beyond 1,024 descriptors, and the process' file limit
  raised to fit), and idle connections are closed after ``channel_timeout`` seconds,
  checked every ``cleanup_interval`` seconds;
- ``X-Forwarded-*`` headers reach the app only when ``proxy_fix`` trusts a proxy;
- each connection stays readable while its request runs (one request of lookahead),
  so waitress notices a client that hung up and the request can stop its query
  (``waitress.client_disconnected`` in the WSGI environment, see ``service.client``).
"""

from __future__ import annotations

import logging

from vo_clip import __version__
from vo_clip.config import Config

__all__ = ["create_server", "server_options"]

log = logging.getLogger(__name__)

#: Descriptors kept for files, the job database and the listening socket.
_SPARE_FILES = 256


def server_options(config: Config) -> dict:
    """The waitress adjustments that ``config`` asks for."""
    return {"threads": config.threads, "connection_limit": config.connection_limit,
            "channel_timeout": config.channel_timeout,
            "cleanup_interval": config.cleanup_interval, "asyncore_use_poll": True,
            "channel_request_lookahead": 1, "ident": f"vo_clip/{__version__}",
            # waitress drops X-Forwarded-* from untrusted peers; with proxy_fix set,
            # the app's ProxyFix (service.app) is the one that decides.
            "clear_untrusted_proxy_headers": not config.proxy_fix}


def create_server(app, config: Config, *, host: str, port: int, **overrides):
    """A waitress server for ``app`` on ``host:port`` (0: a free port), not yet running.

    ``overrides`` replace single options (the tests' ``ident``); raises OSError when
    the address cannot be bound.
    """
    from waitress.server import create_server as waitress_server

    options = {**server_options(config), **overrides}
    _make_room_for(options["connection_limit"] + options["threads"] + _SPARE_FILES)
    return waitress_server(app, host=host, port=port, **options)


def _make_room_for(descriptors: int) -> None:
    """Raise the soft open-files limit towards ``descriptors`` (never above the hard one)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = descriptors if hard == resource.RLIM_INFINITY else min(descriptors, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if wanted < descriptors:
        log.warning("the open-files limit (%s) is below what connection_limit needs (%s)",
                    hard, descriptors)
