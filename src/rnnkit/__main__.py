"""`python -m rnnkit …`: the `rnnkit` command."""

from .cli.main import main

raise SystemExit(main())
