"""Worked use cases (billing, infra, metrics, support): schemas, simulators, reference computations,
models, command groups and demo steps, each registered through the ``shoal.usecases`` entry points
(:class:`shoal.usecases.registry.UseCase`)."""
