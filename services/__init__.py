"""AgentWatch services: gateway, budget, anomaly, sink and what they share."""
