"""``python -m semiseg``: the ``semiseg`` command."""

import sys

from semiseg.commands import cli_main

sys.exit(cli_main())
