"""Test harness: real services (Kafka-protocol brokers, S3, MariaDB, PostgreSQL, Prometheus, Chromium)
started on 127.0.0.1 by pytest fixtures (see tests/conftest.py) and stopped at session end."""

from __future__ import annotations

from .browser import HEADLESS_FLAGS, chromium_binary, headless_flags
from .databases import DatabaseUnavailable, DBInfo, MySQLServer, PostgresServer
from .kafka import (
    KafkaBroker,
    NoidaBroker,
    TansuBroker,
    noida_binary,
    start_broker,
    tansu_binary,
    unique_topic,
)
from .ports import (
    ServiceStartError,
    free_port,
    free_ports,
    log_tail,
    port_is_open,
    wait_for_http,
    wait_for_port,
    wait_until,
)
from .processes import ManagedProcess, stop_all
from .prometheus import PrometheusTools
from .s3 import LakeRoot, SeaweedS3, weed_binary

__all__ = [
    "HEADLESS_FLAGS",
    "DBInfo",
    "DatabaseUnavailable",
    "KafkaBroker",
    "LakeRoot",
    "ManagedProcess",
    "MySQLServer",
    "NoidaBroker",
    "PostgresServer",
    "PrometheusTools",
    "SeaweedS3",
    "ServiceStartError",
    "TansuBroker",
    "chromium_binary",
    "free_port",
    "free_ports",
    "headless_flags",
    "log_tail",
    "noida_binary",
    "port_is_open",
    "start_broker",
    "stop_all",
    "tansu_binary",
    "unique_topic",
    "wait_for_http",
    "wait_for_port",
    "wait_until",
    "weed_binary",
]
