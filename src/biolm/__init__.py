"""biolm: biological large models on one Lightning + Hydra engine."""

__version__ = "0.1.0"
