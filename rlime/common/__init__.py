"""What every layer shares and nothing else: the configuration error type and registry lookup
(`errors`), safe file I/O (`files`), typed settings (`settings`), the per-phase wall clock
(`timing`) and running an entry point (`entry`). Imports no other rlime package."""
