"""asyncgen's own OpenAI-compatible simulator: latency, rate limits and faults on demand.

Run it with ``python -m asyncgen.sim --port 8000``, or in tests with
:func:`asyncgen.testing.sim_server`.
"""

from ._app import SimApp as SimApp
from ._config import Fault as Fault
from ._config import ModelProfile as ModelProfile
from ._config import SimConfig as SimConfig
from ._server import SimServer as SimServer

__all__ = ["Fault", "ModelProfile", "SimApp", "SimConfig", "SimServer"]
