"""The EIR network function: config, servers, policy, stores, metrics, events."""

__version__ = "0.1.0"
