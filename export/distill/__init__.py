"""Teacher traces for R-SFT, kept only when they reach the gold labels.

``python -m export.distill`` runs export.distill.command.
"""
