"""Training: the runtime (device, seeds, DDP), one loop for every method, and the method registry."""
