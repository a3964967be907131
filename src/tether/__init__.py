"""tether: drive a coding agent on your own machine from any browser."""

__version__ = "0.1.0"
