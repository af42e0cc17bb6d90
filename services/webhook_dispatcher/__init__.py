"""Webhook dispatcher: POSTs the prediction to its `webhook` URL at start and completion."""
