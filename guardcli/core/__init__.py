"""The judging core: records, the task table, the prompt, tokenizer, engine, parser, triage and
``Guard``, which joins them. Nothing here knows about files, the command line or evaluation
(an import-linter contract in pyproject.toml keeps it so)."""
