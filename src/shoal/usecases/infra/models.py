"""Infrastructure models for the runner: list ``shoal.usecases.infra.models`` under ``models:`` in
shoal.yaml to keep the streaming detector (``infra.stream_ew``, ``ew_models.py``, ADR 0036), the anomaly
windows (``infra.anomalies`` and the peer detectors' inputs ``infra.peer_inputs``, ``anomaly_models.py``,
ADR 0045) and the hypervisor profiles and placement hints (``profiles.py``) up to date with
``shoal refresh`` / the watcher.

The trailing-window detector's runner model (``infra.stream_alarms``, ADR 0014) is retired: the
compact-state detector replaced it in the demo and the fleet, at a seventh of the refresh CPU. Its SQL
(``streaming.py``) stays as the ``window`` row of ``shoal infra evaluate --asd``.
"""

from __future__ import annotations

from shoal.models import Model
from shoal.usecases.infra.anomaly_models import anomaly_models
from shoal.usecases.infra.ew_models import ew_models


def models() -> list[Model]:
    """Every infrastructure model: the streaming detector, the anomaly windows and the hypervisor
    profiles."""
    from shoal.usecases.infra.profiles import models as profile_models

    return ew_models() + anomaly_models() + profile_models()
