"""python -m asyncgen: the asyncgen command."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while the command itself loads
    sys.stderr.write("asyncgen: interrupted\n")
    raise SystemExit(130) from None

raise SystemExit(main())
