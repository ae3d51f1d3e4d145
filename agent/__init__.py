"""dcp-agent: preflight checks for Distributed-CellProfiler control nodes and AWS accounts."""

__version__ = "0.1.0"
