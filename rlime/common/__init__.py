"""What every layer shares and nothing else: the configuration error type and registry lookup
(`errors`), safe file I/O (`files`) and the per-phase wall clock (`timing`). Imports no other
rlime package."""
