"""The generative models, each registered in `generators.registry`; imported on demand."""
