"""Scheduler: owns each prediction's lifecycle, queues work for runners, records their results."""
