"""Pure billing rules: which events bill, and what a usage record holds."""
