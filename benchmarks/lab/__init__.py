"""The learning lab: a toy-scale experiment on the CPU of what Trust-GRPO's thinking reward and trust weight do."""
