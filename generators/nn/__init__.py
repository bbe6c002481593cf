"""Shared neural blocks: layers, mixtures, the training loop and DP-SGD. Never imports a model."""
