"""gcrm_kit: goal-conditioned reward models, from a toy world on a laptop CPU to the paper's scale."""

__version__ = "0.1.0"
