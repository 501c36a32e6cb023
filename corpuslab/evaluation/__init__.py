"""Evaluation: per-token losses, metrics, canary memorization, zero-shot tasks."""
