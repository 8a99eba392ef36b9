"""Absolute URLs: every URL the service writes starts from one base.

The configured ``base_url`` wins (a deployment behind a proxy knows its public name);
without one, the request's own host is used, so a local server names itself correctly.
"""

from __future__ import annotations

from flask import current_app, request

__all__ = ["base_url", "tap_url"]


def base_url() -> str:
    """The service root, without a trailing slash."""
    configured = current_app.extensions["vo_clip.config"].base_url
    return (configured or request.url_root).rstrip("/")  # url_root keeps a mount prefix


def tap_url() -> str:
    """The TAP base URL, ``{base}/tap`` (what TOPCAT and taplint are given)."""
    return base_url() + "/tap"
