"""The data every stage agrees on: ``python -m export.data.splits`` (the validation split)."""
