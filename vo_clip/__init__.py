"""vo_clip: plain-language search of Hubble observations, served through IVOA standards.

The package is layered so that imports point one way only:
``cli``/``service`` → ``vo`` → ``search`` → ``ml`` → ``archive``/``config``.
Heavy dependencies (torch, open_clip) are imported lazily by ``vo_clip.ml`` so that
the archive, catalog and protocol layers stay importable without them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
