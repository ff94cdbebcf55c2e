"""Test models, outside the product (the wheel packages guardcli and export only).

``tiny`` writes a tiny random Llama checkpoint and tokenizer in a second; ``pairs`` and
``fixture`` build the fixture guard model the end-to-end tests run: a toy Llama overfit to
write real GuardReasoner traces, converted by export.convert to a validated fp32 bundle.
"""
