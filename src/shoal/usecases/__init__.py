"""Worked use cases (support, billing, infra): schemas, simulators, reference computations, models."""
