"""One configuration object: paths, the model to use, and the service identity.

Values come, each overriding the one before, from the defaults, a TOML file
(``--config FILE`` or ``$VO_CLIP_CONFIG``), ``VO_CLIP_*`` environment variables and the
command-line flags. The result is frozen and passed explicitly; the library never
reads the environment on its own, so the same code serves a laptop and a deployment.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Mapping

from .errors import VoClipError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["Config", "default_home"]

ENV_PREFIX = "VO_CLIP_"


def default_home(env: Mapping[str, str] = os.environ) -> Path:
    """Where vo_clip keeps what it builds: ``$XDG_CACHE_HOME/vo_clip`` or ``~/.cache/vo_clip``."""
    cache = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "vo_clip"


@dataclass(frozen=True)
class Config:
    """Settings of a vo_clip installation.

    Attributes
    ----------
    home : Path
        Directory for built archives and indexes.
    archive : Path, optional
        The archive directory; defaults to the demo archive under ``home``.
    index : Path, optional
        The index directory; defaults to ``home/indexes/<archive directory name>``.
    model : str, optional
        Model spec (see :mod:`vo_clip.ml.model`); defaults to the one the index was
        built with.
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    base_url, authority, title : str
        Service identity used in every URL and ivo:// identifier the service writes.
    """

    home: Path
    archive: Path | None = None
    index: Path | None = None
    model: str | None = None
    device: str = "auto"
    base_url: str | None = None
    authority: str = "example.org"
    title: str = "vo_clip: Hubble observations searched in plain language"

    @property
    def archive_dir(self) -> Path:
        return self.archive or self.home / "demo-archive"

    @property
    def index_dir(self) -> Path:
        return self.index or self.home / "indexes" / self.archive_dir.name

    @classmethod
    def load(cls, *, file: str | os.PathLike | None = None,
             env: Mapping[str, str] = os.environ, **overrides) -> "Config":
        """Defaults, then the TOML file, then ``VO_CLIP_*`` variables, then ``overrides``.

        Raises
        ------
        VoClipError
            If the file cannot be read or names an unknown setting.
        """
        config = cls(home=default_home(env))
        file = file or env.get(ENV_PREFIX + "CONFIG")
        if file:
            config = config.updated(_read_toml(Path(file)), origin=str(file))
        from_env = {f.name: env[ENV_PREFIX + f.name.upper()] for f in fields(cls)
                    if ENV_PREFIX + f.name.upper() in env}
        config = config.updated(from_env, origin="the environment")
        return config.updated({k: v for k, v in overrides.items() if v is not None},
                              origin="the command line")

    def updated(self, values: Mapping[str, object], *, origin: str) -> "Config":
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise VoClipError(f"unknown setting(s) {', '.join(unknown)} in {origin}",
                              hint=f"known settings: {', '.join(sorted(known))}")
        paths = {"home", "archive", "index"}
        return replace(self, **{k: (Path(str(v)).expanduser() if k in paths else v)
                                for k, v in values.items()})


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise VoClipError(f"cannot read configuration file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise VoClipError(f"configuration file {path} is not valid TOML: {exc}") from exc
    return data.get("vo_clip", data)
