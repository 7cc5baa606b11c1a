"""What runs and how late it is: pipelines (workers, lag, throughput, dead letters), models
(freshness against their inputs), tables (size, small files, maintenance), jobs and the children of
``shoal up``. Used by ``shoal status``, ``GET /v1/status`` and the server's ``/metrics``."""
