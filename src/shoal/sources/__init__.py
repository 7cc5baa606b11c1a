"""Infrastructure metric sources that write into the lake.

- :mod:`shoal.sources.prometheus`: exposition parsing, a file_sd-driven scraper, a
  remote_write receiver and rollups, all writing the ``metrics.*`` tables.
- :mod:`shoal.sources.smartctl`: ``smartctl --json -a`` parsing into ``infra.smart_devices``
  and ``infra.smart_attributes``.
"""
