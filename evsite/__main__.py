"""``python -m evsite`` is the same as the ``evsite`` command."""

from evsite.cli import main

raise SystemExit(main())
