"""`dcp-agent status` and `dcp-agent requeue`: the run companion (what the current DCP run is doing)."""
