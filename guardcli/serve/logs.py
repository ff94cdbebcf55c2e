"""The server's stderr log: one line per event, never a raw control character.

A client controls its paths and bodies; written raw, an escape sequence in them could rewrite
an operator's terminal or forge log lines. Request content is logged only with
``--log-requests``.
"""

from __future__ import annotations

import re
import sys
import time

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape(text: str) -> str:
    """Every control character (newlines too) as a visible \\xNN / \\uNNNN escape."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    sys.stderr.write(f"{stamp} guardcli: {escape(message)}\n")
    sys.stderr.flush()
