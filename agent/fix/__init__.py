"""``dcp-agent fix``: compute the changes that cure what the checks find, show them, make them on request."""
