"""Absolute URLs: every URL the service writes starts from one base.

The configured ``base_url`` wins (a deployment behind a proxy knows its public name);
without one, the request's own host is used, so a local server names itself correctly.
``X-Forwarded-*`` headers change the request's host only when the ``proxy_fix``
setting trusts a proxy (``service.app``). An async job keeps the root its creator
used, and everything the job writes names that one (:func:`job_base_url`).
"""

from __future__ import annotations

from flask import current_app, request

__all__ = ["base_url", "job_base_url", "tap_url"]


def base_url() -> str:
    """The service root, without a trailing slash."""
    configured = current_app.extensions["vo_clip.config"].base_url
    return (configured or request.url_root).rstrip("/")  # url_root keeps a mount prefix


def tap_url() -> str:
    """The TAP base URL, ``{base}/tap`` (what TOPCAT and taplint are given)."""
    return base_url() + "/tap"


def job_base_url(created_through: str | None) -> str:
    """The root a job's URLs start from: configured, else the one it was created through.

    Jobs made before jobs kept their root (``None``) name the current request's.
    """
    configured = current_app.extensions["vo_clip.config"].base_url
    return (configured or created_through or request.url_root).rstrip("/")
