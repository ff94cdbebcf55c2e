"""``python -m export.distill`` runs export.distill.command."""

import sys

from export.distill.command import main

if __name__ == "__main__":
    sys.exit(main())
