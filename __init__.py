"""bmad: a declarative workflow language for work done by LLMs, with its whole toolchain."""

__version__ = "0.1.0"
