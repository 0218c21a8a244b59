"""The child process of ``SimServer(process=True)``: ``python -m asyncgen.sim._child``.

Its spec (listening socket's fd, config, TLS files) arrives as one JSON line on standard
input, which the parent keeps open: when it closes (the parent stopped the simulator, or
died, even by SIGKILL), the child ends too.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading

from ._config import SimConfig
from ._serve import serve


def main() -> None:
    """Serve on the inherited socket until terminated."""
    spec = json.loads(sys.stdin.buffer.readline())
    threading.Thread(target=_end_with_parent, name="sim-parent-watch", daemon=True).start()
    serve(
        SimConfig.model_validate(spec["config"]),
        sock=socket.socket(fileno=spec["fd"]),
        http2=spec["http2"],
        certfile=spec.get("certfile"),
        keyfile=spec.get("keyfile"),
        log_level="critical",
    )


def _end_with_parent() -> None:
    """Block until the parent's end of standard input closes, then stop serving."""
    sys.stdin.buffer.read()
    os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    main()
