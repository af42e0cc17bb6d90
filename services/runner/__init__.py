"""The runner service: executes prediction jobs in Cog-compatible model worker processes."""
