"""python -m asyncgen: the asyncgen command."""

from .cli import main

raise SystemExit(main())
