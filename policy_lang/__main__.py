"""``python -m policy_lang …`` is ``uma policy …``."""

from .cli import main

raise SystemExit(main())
