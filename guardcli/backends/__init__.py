"""Inference runtimes behind guardcli.core.engine's Backend protocol (onnxruntime-genai)."""
