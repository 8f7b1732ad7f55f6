"""actiscope: recognise human actions in still images and short video clips."""

from __future__ import annotations

__version__ = "0.1.0"
