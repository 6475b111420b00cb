"""reftlab: declarative reinforcement fine-tuning experiments on math word problems."""

__version__ = "0.1.0"
