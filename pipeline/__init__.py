"""The stream processors on Quix Streams (the meter and wallet stages, the clock, the
sinks) and, in :mod:`pipeline.billing`, the pure billing domain they call
(docs/architecture.md, layers)."""
