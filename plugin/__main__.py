"""``python -m allotment``."""

from .cli import main

raise SystemExit(main())
