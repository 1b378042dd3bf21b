"""The log as an event stream for other services: the HTTP feed and NATS JetStream."""
