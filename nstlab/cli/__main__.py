"""``python -m nstlab.cli`` runs the ``nstlab`` command."""

import sys

from nstlab.cli import main

sys.exit(main())
