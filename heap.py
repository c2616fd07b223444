"""The collector and a long-lived server process.

Startup builds hundreds of thousands of objects that live as long as the process (the
schema, the engine, the imported modules). Left in the collector's oldest generation,
every full collection walked them all again: 80 ms each, several a second under emit
load (issue 11), in the middle of requests. Frozen once startup is done, they are
never walked again; what requests make is collected as before."""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap"]


def freeze_startup_heap() -> int:
    """Collect what startup left as garbage, then freeze everything alive; how many
    objects are frozen now. For a server process, once it is ready to serve."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
