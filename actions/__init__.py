"""Journey actions: rules on profile values, the outbox, and signed webhook delivery."""
