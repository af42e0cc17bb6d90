"""Messaging over NATS JetStream: connection, streams, durable consumers and the outbox relay."""
