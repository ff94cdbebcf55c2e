"""Scoring trained models: ``python -m export.eval.evaluate`` (held-out F1 through guardcli's own
judging path) and ``python -m export.eval.calibrate`` (fast-mode thresholds)."""
