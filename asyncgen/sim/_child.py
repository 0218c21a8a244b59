"""The child process of ``SimServer(process=True)``: ``python -m asyncgen.sim._child``.

Its spec (listening socket's fd, config, TLS files) arrives as JSON on standard input.
"""

from __future__ import annotations

import json
import socket
import sys

from ._config import SimConfig
from ._serve import serve


def main() -> None:
    """Serve on the inherited socket until terminated."""
    spec = json.loads(sys.stdin.read())
    serve(
        SimConfig.model_validate(spec["config"]),
        sock=socket.socket(fileno=spec["fd"]),
        http2=spec["http2"],
        certfile=spec.get("certfile"),
        keyfile=spec.get("keyfile"),
        log_level="critical",
    )


if __name__ == "__main__":
    main()
