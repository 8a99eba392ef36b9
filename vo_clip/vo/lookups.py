"""What DataLink and the web pages look up about one observation or proposal.

The observation's catalog row, a proposal's observations, the preview file on disk,
the FITS product made from it, and PAPERCLIP's description retrieval: each reads the
catalog through the backend's named lookups (:data:`vo_clip.search.backends.LOOKUPS`)
under the ``lookup_time_limit``, so ``service/`` renders answers without reaching into
the search or archive layers.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from .faults import NotFoundFault

__all__ = ["Lookups"]


class Lookups:
    """The lookups of one :class:`~vo_clip.vo.tap.TapService` (its catalog, index, model)."""

    def __init__(self, tap):
        self._tap = tap
        self._cache: dict[str, object] = {}
        self._lock = threading.Lock()

    def lookup(self, name: str, **arguments) -> list[dict]:
        """The rows of one named lookup, under a time limit of its own.

        Raises
        ------
        TransientFault
            If it runs past ``lookup_time_limit``.
        """
        with self._tap.session(seconds=self._tap.limits.lookup_time_limit,
                               limit="lookup_time_limit") as session:
            return session.lookup(name, **arguments)

    def observation(self, obs_id: str) -> dict | None:
        """Every catalog column of ``obs_id`` (None when unknown)."""
        rows = self.lookup("observation", obs_id=obs_id)
        return rows[0] if rows else None

    def proposal(self, proposal_id: str) -> tuple[dict, list[dict]] | None:
        """A proposal's title, PI, cycle, abstract and summary, and its observations."""
        rows = self.lookup("proposal", proposal_id=proposal_id)
        return (rows[0], rows) if rows else None

    def sample_observation(self) -> tuple[str, float, float]:
        """The first observation's obs_id, s_ra and s_dec (for examples that must run)."""
        rows = self.lookup("first_observation")
        return tuple(rows[0].values()) if rows else ("OBS_ID", 0.0, 0.0)

    def archive_source(self) -> str | None:
        """Where the indexed archive came from (its archive.json ``source``), if known."""
        try:
            return json.loads((self._archive() / "archive.json").read_text()).get("source")
        except (OSError, ValueError):
            return None

    def preview_file(self, obs_id: str) -> Path:
        """The preview image of ``obs_id`` in the indexed archive.

        Raises
        ------
        NotFoundFault
            If the observation is unknown or its preview is not on disk.
        """
        rows = self.lookup("preview", obs_id=obs_id)
        preview = rows[0]["preview"] if rows else None
        archive = self._archive().resolve()
        path = (archive / preview).resolve() if preview else None
        if path is None or archive not in path.parents or not path.is_file():
            raise NotFoundFault(f"no preview for observation {obs_id!r}")
        return path

    def product_fits(self, obs_id: str) -> bytes:
        """The FITS image of ``obs_id``'s preview, with its celestial WCS and provenance.

        Raises
        ------
        NotFoundFault
            If the observation or its preview is unknown.
        """
        from ..archive.fits_product import preview_fits

        row = self.observation(obs_id)
        if row is None:
            raise NotFoundFault(f"no observation {obs_id!r} in this service")
        source = self.archive_source()
        notes = [f"Archive: {source}"] if source else []
        return preview_fits(self.preview_file(obs_id), row, notes=notes)

    def describer(self):
        """PAPERCLIP description retrieval (:class:`~vo_clip.search.describe.Describer`),
        its descriptions embedded on first use and then kept."""
        from ..search.describe import Describer

        describer = self._cached("describer", lambda: Describer(self._tap.engine()))
        describer.matrix  # noqa: B018 - embeds the descriptions now, not on first describe
        return describer

    def encode_image(self, image) -> np.ndarray:
        """The unit vector of a PIL image, in the index's embedding space."""
        model = self._tap.engine().model
        return np.asarray(model.encode_images([image])[0], dtype=np.float32)

    def _archive(self) -> Path:
        return Path(self._tap.index.manifest.archive.get("path") or ".")

    def _cached(self, name: str, build: Callable[[], object]):
        with self._lock:
            if name not in self._cache:
                self._cache[name] = build()
            return self._cache[name]
