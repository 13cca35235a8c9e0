"""What every service shares: settings, event schemas, topic names, Kafka helpers."""
