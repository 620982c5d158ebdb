"""L2 storage adapters, one backend per module; each satisfies `cachetier.protocols.L2Adapter`."""
