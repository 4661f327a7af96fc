"""Journey Engine's service shell: settings, the app factory, HTTP routes, storage and the CLI."""

from journey_engine.app import create_app
from journey_engine.settings import Settings

__all__ = ["Settings", "create_app"]
