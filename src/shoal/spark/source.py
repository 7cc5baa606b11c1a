"""Which lake a call means: a Lake, a Project, or a project directory."""

from __future__ import annotations

from pathlib import Path

from shoal.lake import Lake
from shoal.project import Project

LakeSource = Lake | Project | str | Path


def as_lake(source: LakeSource) -> Lake:
    if isinstance(source, Lake):
        return source
    if isinstance(source, Project):
        return source.lake
    return Project.load(source).lake


def spark_uri(uri: str) -> str:
    """A lake URI as Spark's Hadoop filesystems name it (``s3a://`` needs hadoop-aws on the
    classpath: the PyPI package does not ship it)."""
    return "s3a://" + uri.removeprefix("s3://") if uri.startswith("s3://") else uri
