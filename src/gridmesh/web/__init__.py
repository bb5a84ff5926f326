"""The dashboard: static HTML, CSS and ES modules served by the API (no build step)."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
