"""Sampling outputs from a model (a bundle or a checkpoint) and from an OpenAI-compatible
teacher: what distillation and HS-DPO feed on."""
