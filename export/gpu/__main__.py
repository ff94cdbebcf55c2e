"""``python -m export.gpu`` runs export.gpu.command."""

import sys

from export.gpu.command import main

if __name__ == "__main__":
    sys.exit(main())
