"""``python -m mecg`` runs the ``mecg`` command."""

import sys

from mecg.cli.main import main

sys.exit(main())
