"""biolm: biological large models on one Lightning + Hydra engine."""

__version__ = "0.1.0"

from biolm.resources import register_resolvers

register_resolvers()  # ${bundled:...} in configs loaded by any caller (OmegaConf.load, the API, the CLI)
