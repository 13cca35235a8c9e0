"""Risk scanning: PII and secrets in captured payloads (scanner, redaction, Kafka worker, inline guard)."""
