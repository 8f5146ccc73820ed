"""The docqueue producer: CLI, document loading, enqueueing. Imports no torch and no worker code."""
