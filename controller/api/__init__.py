"""The operator surface of a running site: an HTTP API (FastAPI, OpenAPI at ``/docs``) and the dashboard at ``/``.

``ApiServer(ApiContext(...))`` runs on the same event loop as the central system (``controller.runtime``
starts it when ``[api] enabled``). ``SiteStateSource`` is what load management implements so the API and
dashboard show its limits and reasons; until then ``LiveSite`` answers from the bus.
"""

from controller.api.context import ApiContext
from controller.api.server import ApiServer
from controller.api.site_state import LiveSite, SiteStateSource

__all__ = ["ApiContext", "ApiServer", "LiveSite", "SiteStateSource"]
