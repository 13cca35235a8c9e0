"""AgentWatch SDK: the official OpenAI and Anthropic clients, routed through the AgentWatch gateway."""

__version__ = "0.1.0"
