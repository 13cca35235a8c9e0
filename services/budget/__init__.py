"""The budget worker: a Faust app folding call and control events into per-session state."""
