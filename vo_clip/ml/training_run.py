"""A training run's directory: what an interrupted fine-tuning needs to go on exactly.

A run on a real archive takes hours on a GPU that may be taken back; a run restarted
from its last state must give the curve the uninterrupted run would have given. So the
directory holds everything the loop's future depends on, written atomically:

``run.json``
    the settings, the base model and the archive fingerprint; a resume with other ones
    is refused rather than silently mixing two runs;
``state.pt``
    weights, optimiser and schedule, the random generators' states, the current
    epoch's batch order and position, the validation history;
``best.pt``
    the weights of the best step by validation retrieval so far;
``metrics.jsonl``
    one JSON object per logged training window and per validation, for plots and for
    tailing while it runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ..errors import VoClipError

__all__ = ["TrainingRun"]


class TrainingRun:
    """The files of one run under ``root`` (created on :meth:`start`)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        self.manifest = self.root / "run.json"
        self.state = self.root / "state.pt"
        self.best = self.root / "best.pt"
        self.metrics = self.root / "metrics.jsonl"

    def has_state(self) -> bool:
        return self.state.is_file()

    def start(self, identity: dict) -> None:
        """Begin a fresh run: earlier files of this directory are replaced."""
        self.root.mkdir(parents=True, exist_ok=True)
        for path in (self.state, self.best, self.metrics):
            path.unlink(missing_ok=True)
        _write_atomically(self.manifest, (json.dumps(identity, indent=2) + "\n").encode())

    def check_resumable(self, identity: dict) -> None:
        """Refuse to resume a run that was started with other settings or data.

        Raises
        ------
        VoClipError
            If there is no saved state, or ``identity`` differs from the run's.
        """
        if not self.has_state() or not self.manifest.is_file():
            raise VoClipError(f"no interrupted run to resume in {self.root}",
                              hint="start one without --resume")
        started = json.loads(self.manifest.read_text())
        changed = _differences(started, json.loads(json.dumps(identity)))
        if changed:
            raise VoClipError(f"the run in {self.root} was started with other settings "
                              f"({'; '.join(changed[:3])})",
                              hint="resume with the same options, or start over with --restart")

    def save_state(self, state: dict) -> None:
        _save_atomically(state, self.state)

    def load_state(self, device: str) -> dict:
        return torch.load(self.state, map_location=device, weights_only=True)

    def save_best(self, weights: dict) -> None:
        _save_atomically(weights, self.best)

    def load_best(self) -> dict:
        return torch.load(self.best, map_location="cpu", weights_only=True)

    def log(self, record: dict) -> None:
        with open(self.metrics, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def read_log(self) -> list[dict]:
        if not self.metrics.is_file():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line]

    def truncate_log(self, step: int) -> None:
        """Forget what was logged after ``step``: the resumed run logs it again."""
        kept = [r for r in self.read_log() if r["step"] <= step]
        _write_atomically(self.metrics, "".join(json.dumps(r) + "\n" for r in kept).encode())


def _differences(started: dict, now: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(started) | set(now)):
        a, b = started.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} was {a!r}, now {b!r}")
    return out


def _save_atomically(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    os.replace(tmp, path)
