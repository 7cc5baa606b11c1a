"""Errors the decode stage raises while *building* a decoder.

Per-record problems never raise: they come back as :class:`shoal.decode.DecodeFailure` rows.
"""

from __future__ import annotations

from shoal.errors import ConfigError, ShoalError, Terminal


class DecodeError(ShoalError):
    """Root of decode-stage errors."""


class SchemaLoadError(DecodeError, Terminal):
    """A .proto file failed to compile, or a descriptor set could not be read or linked."""


class MessageNotFound(DecodeError, Terminal):
    """The configured protobuf message name is not in the loaded descriptors."""


class DecodeSpecError(ConfigError, DecodeError):
    """A decode spec is inconsistent (e.g. protobuf without a message, clashing column names)."""
