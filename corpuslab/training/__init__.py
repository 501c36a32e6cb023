"""The model, the training loop, its callbacks, samplers and procedures."""
