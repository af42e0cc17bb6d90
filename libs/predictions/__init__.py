"""The prediction as API clients see it: folded from lifecycle events, rendered in Replicate's shape."""

from libs.predictions.view import TERMINAL_STATUSES, apply_event, render_prediction, restore_event

__all__ = ["TERMINAL_STATUSES", "apply_event", "render_prediction", "restore_event"]
