"""asyncgen's own OpenAI-compatible simulator: latency, rate limits and faults on demand.

Run it with ``asyncgen sim --port 8000``, from code with :func:`serve`, or in tests with
:func:`asyncgen.testing.sim_server`.
"""

from ._app import SimApp as SimApp
from ._config import DEFAULT_MODELS as DEFAULT_MODELS
from ._config import BatchProfile as BatchProfile
from ._config import Fault as Fault
from ._config import KeyLimit as KeyLimit
from ._config import ModelProfile as ModelProfile
from ._config import SimConfig as SimConfig
from ._serve import serve as serve
from ._server import SimServer as SimServer

__all__ = [
    "DEFAULT_MODELS",
    "BatchProfile",
    "Fault",
    "KeyLimit",
    "ModelProfile",
    "SimApp",
    "SimConfig",
    "SimServer",
    "serve",
]
