"""Turn .proto files or FileDescriptorSets into protobuf message classes (no generated _pb2 modules).

.proto files are compiled with grpcio-tools' bundled protoc into a FileDescriptorSet; descriptor sets are
loaded into a *private* DescriptorPool per distinct set, so two versions of the same .proto (schema
evolution) can live in one process without clashing in the default pool.
"""

from __future__ import annotations

import difflib
import hashlib
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError as ProtoDecodeError
from google.protobuf.message import Message

from shoal.decode.errors import MessageNotFound, SchemaLoadError

_lock = threading.Lock()


@cache
def well_known_include_dir() -> Path:
    """grpc_tools ships google/protobuf/*.proto (timestamp, duration, wrappers, ...) here."""
    import grpc_tools

    return Path(grpc_tools.__file__).parent / "_proto"


def compile_proto(proto_file: Path | str, include_paths: Sequence[Path | str] = ()) -> bytes:
    """Compile ``proto_file`` (and its imports) to a serialized FileDescriptorSet with protoc.

    Cached per file version (path, size, mtime): protoc runs in a subprocess (0.1-0.3 s), and
    callers such as decoders and use-case codecs ask for the same file many times.
    """
    proto = Path(proto_file).resolve()
    if not proto.is_file():
        raise SchemaLoadError(f"proto file not found: {proto}")
    st = proto.stat()
    includes = tuple(str(Path(p).resolve()) for p in include_paths)
    return _compile_cached(str(proto), st.st_size, st.st_mtime_ns, includes)


@cache
def _compile_cached(proto_path: str, size: int, mtime_ns: int, include_paths: tuple[str, ...]) -> bytes:
    del size, mtime_ns  # part of the cache key only
    proto = Path(proto_path)
    includes = [Path(p) for p in include_paths]
    if not any(proto.is_relative_to(inc) for inc in includes):
        includes.insert(0, proto.parent)
    includes.append(well_known_include_dir())
    with tempfile.TemporaryDirectory(prefix="shoal-protoc-") as tmp:
        out = Path(tmp) / "set.pb"
        args = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            *(f"--proto_path={inc}" for inc in includes),
            f"--descriptor_set_out={out}",
            "--include_imports",
            str(proto),
        ]
        # A subprocess (rather than grpc_tools.protoc.main in-process) so protoc's stderr can be
        # captured into the error message.
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not out.exists():
            detail = " | ".join(line.strip() for line in proc.stderr.splitlines() if line.strip())
            raise SchemaLoadError(f"protoc failed for {proto}: {detail or f'exit {proc.returncode}'}")
        return out.read_bytes()


def _parse_set(data: bytes, origin: str) -> descriptor_pb2.FileDescriptorSet:
    fds = descriptor_pb2.FileDescriptorSet()
    try:
        fds.ParseFromString(data)
    except ProtoDecodeError as exc:
        raise SchemaLoadError(f"{origin} is not a FileDescriptorSet: {exc}") from None
    if not fds.file:
        raise SchemaLoadError(f"{origin} is not a FileDescriptorSet: it holds no files")
    return fds


def _load_well_known_types() -> None:
    """Register google/protobuf/*.proto in the default pool (importing the _pb2 modules does that)."""
    from google.protobuf import (  # noqa: F401
        any_pb2,
        api_pb2,
        duration_pb2,
        empty_pb2,
        field_mask_pb2,
        source_context_pb2,
        struct_pb2,
        timestamp_pb2,
        type_pb2,
        wrappers_pb2,
    )


def _build_pool(
    files: Iterable[descriptor_pb2.FileDescriptorProto], origin: str
) -> descriptor_pool.DescriptorPool:
    by_name = {f.name: f for f in files}
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    default = descriptor_pool.Default()

    def add(name: str, chain: tuple[str, ...]) -> None:
        if name in added:
            return
        proto = by_name.get(name)
        if proto is None:
            # Sets built without --include_imports usually only lack the well-known types, which
            # protobuf itself carries.
            _load_well_known_types()
            try:
                proto = descriptor_pb2.FileDescriptorProto()
                default.FindFileByName(name).CopyToProto(proto)
            except KeyError:
                raise SchemaLoadError(
                    f"{origin}: {chain[-1]} imports {name}, which is not in the descriptor set "
                    "(build it with protoc --include_imports)"
                ) from None
        if name in chain:
            raise SchemaLoadError(f"{origin}: import cycle {' -> '.join((*chain, name))}")
        for dep in proto.dependency:
            add(dep, (*chain, name))
        try:
            pool.Add(proto)
        except (TypeError, ValueError) as exc:
            raise SchemaLoadError(f"{origin}: cannot load {name}: {exc}") from None
        added.add(name)

    for name in by_name:
        add(name, ())
    return pool


_pools: dict[str, descriptor_pool.DescriptorPool] = {}


def pool_from_descriptor_set(data: bytes, origin: str = "descriptor set") -> descriptor_pool.DescriptorPool:
    """A private pool holding every file of the serialized FileDescriptorSet (cached by content)."""
    key = hashlib.sha256(data).hexdigest()
    with _lock:
        pool = _pools.get(key)
        if pool is None:
            pool = _build_pool(_parse_set(data, origin).file, origin)
            _pools[key] = pool
        return pool


def load_descriptor_set_bytes(
    *,
    proto_file: Path | str | None = None,
    descriptor_set: Path | str | None = None,
    include_paths: Sequence[Path | str] = (),
) -> tuple[bytes, str]:
    if (proto_file is None) == (descriptor_set is None):
        raise SchemaLoadError("give exactly one of proto_file or descriptor_set")
    if proto_file is not None:
        return compile_proto(proto_file, include_paths), str(proto_file)
    path = Path(descriptor_set)  # type: ignore[arg-type]
    try:
        return path.read_bytes(), str(path)
    except OSError as exc:
        raise SchemaLoadError(f"cannot read descriptor set {path}: {exc.strerror}") from None


def message_descriptor(
    message: str,
    *,
    proto_file: Path | str | None = None,
    descriptor_set: Path | str | None = None,
    include_paths: Sequence[Path | str] = (),
) -> Descriptor:
    data, origin = load_descriptor_set_bytes(
        proto_file=proto_file, descriptor_set=descriptor_set, include_paths=include_paths
    )
    pool = pool_from_descriptor_set(data, origin)
    name = message.lstrip(".")
    try:
        return pool.FindMessageTypeByName(name)
    except KeyError:
        known = _message_names(_parse_set(data, origin))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise MessageNotFound(f"message {name!r} is not defined in {origin}{hint}") from None


def _message_names(fds: descriptor_pb2.FileDescriptorSet) -> list[str]:
    names: list[str] = []

    def walk(prefix: str, msgs: Iterable[descriptor_pb2.DescriptorProto]) -> None:
        for m in msgs:
            full = f"{prefix}.{m.name}" if prefix else m.name
            names.append(full)
            walk(full, m.nested_type)

    for f in fds.file:
        walk(f.package, f.message_type)
    return names


def message_class(
    message: str,
    *,
    proto_file: Path | str | None = None,
    descriptor_set: Path | str | None = None,
    include_paths: Sequence[Path | str] = (),
) -> type[Message]:
    """The message class for full name ``message`` from a .proto file or a FileDescriptorSet.

    ``proto_file`` is compiled with grpcio-tools' protoc (its directory and the well-known types are on
    the include path; add more with ``include_paths``). ``descriptor_set`` is a file written by
    ``protoc --descriptor_set_out=... --include_imports``.
    """
    desc = message_descriptor(
        message, proto_file=proto_file, descriptor_set=descriptor_set, include_paths=include_paths
    )
    cls: type[Message] = message_factory.GetMessageClass(desc)
    return cls
