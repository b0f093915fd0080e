"""Stream processing: the Faust app, its agents, and the billing domain they call."""
