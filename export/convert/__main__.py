"""``python -m export.convert`` runs export.convert.command."""

import sys

from export.convert.command import main

if __name__ == "__main__":
    sys.exit(main())
