"""The HTTP edge of vo_clip: a Flask application factory and one blueprint per standard.

It routes requests, renders documents and turns library errors into error documents;
it computes nothing itself and never imports torch or SQL.
"""

from .app import create_app

__all__ = ["create_app"]
