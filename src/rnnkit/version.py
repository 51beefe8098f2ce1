"""The package's version, in a module of its own at the bottom: what records it (config.json)
imports it from here, not from the package root above."""

__version__ = "0.1.0"
