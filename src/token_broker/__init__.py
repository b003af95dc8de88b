"""token-broker: partner-integration token broker."""

__version__ = "0.1.0"
