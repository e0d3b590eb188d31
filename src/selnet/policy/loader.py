"""One call from ``--policy`` arguments to a ready :class:`Policy`.

``--policy BASE --policy MODULE...`` layers modules on a base (see
:mod:`selnet.policy.modules`): on a CIL base they are compiled together with
secilc; on a binary or a policy.conf they are applied as an overlay and the
result, a :class:`~selnet.policy.modules.LayeredPolicy`, lists what was not
applied in ``unapplied``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from selnet.errors import PolicyError, SelnetError
from selnet.policy.cache import get_or_build
from selnet.policy.index import Policy
from selnet.policy.snapshot import PolicySnapshot
from selnet.policy.source import (
    PolicySource,
    allow_caches,
    compile_cil,
    is_cil_base,
    resolve,
    split_layers,
)

# Only a first read of a policy (no cached index) extracts it, in a child process: a warm
# run imports neither multiprocessing nor the extractor.
if TYPE_CHECKING:
    import multiprocessing.connection


def load_policy(
    paths: list[str] | None = None,
    *,
    use_cache: bool = True,
    on_build: Callable[[], None] | None = None,
) -> Policy:
    allow_caches(use_cache)  # --no-cache holds for the whole command
    base_paths, module_paths = split_layers(list(paths or []))
    source = resolve(base_paths or None, use_cache=use_cache)
    try:
        return _load_layers(source, module_paths, use_cache=use_cache, on_build=on_build)
    finally:
        source.cleanup()  # a policy compiled without the cache leaves nothing behind


def _load_layers(
    source: PolicySource,
    module_paths: list[str],
    *,
    use_cache: bool,
    on_build: Callable[[], None] | None,
) -> Policy:
    if not module_paths:
        return load_source(source, use_cache=use_cache, on_build=on_build)

    from selnet.policy.modules import (
        LayeredPolicy,
        ModuleStore,
        apply_modules,
        gen_require_shim,
        prepare,
    )

    # Converted modules go to the cache, or (--no-cache, an unusable cache) to a
    # scratch directory removed here, once the policy is read.
    with ModuleStore(use_cache=use_cache) as store:
        modules = [prepare(Path(p), store) for p in module_paths]
        if is_cil_base(source):
            # Exact: the base's CIL and every module's, compiled together.
            together = compile_cil(
                [*source.inputs, *gen_require_shim(source.inputs, modules, store),
                 *(m.cil for m in modules)],
                origin=source.origin,
                inputs=(*source.inputs, *(m.path for m in modules)),
                use_cache=use_cache,
            )
            try:
                loaded = load_source(together, use_cache=use_cache, on_build=on_build)
            finally:
                together.cleanup()
            return LayeredPolicy.wrap(loaded, tuple(modules), (), exact=True, module_changes=0)
        # The base's index is cached by its own sha256; the overlay is applied in
        # memory and nothing is cached for the combination.
        base = load_source(source, use_cache=use_cache, on_build=on_build)
        return apply_modules(base, modules)


def load_source(
    source: PolicySource, *, use_cache: bool = True, on_build: Callable[[], None] | None = None
) -> Policy:
    def build() -> tuple[PolicySnapshot, bytes | None]:
        if on_build is not None:
            on_build()
        return extract_guarded(str(source.binary), source.sha256)

    if use_cache:
        snap, cached = get_or_build(source.sha256, build)
    else:
        snap, cached = build()[0], False
    # A scratch compile is deleted once read: the policy keeps a source that names the
    # user's inputs, never the deleted file.
    return Policy(snap, source.settled(), from_cache=cached)


# libsepol can spin forever on some corrupt binaries (a bit flip in the right place): the
# first read of a policy, the only one that runs libsepol, happens in a child process
# that is killed after this many seconds.  A cached policy never runs libsepol at all.
# None: SELNET_LOAD_TIMEOUT, read at each load (so a parent that imported selnet early,
# such as the fuzz campaign, can still set it), else 300 s.
LOAD_TIMEOUT: float | None = None
_DEFAULT_TIMEOUT = 300.0


def load_timeout() -> float:
    if LOAD_TIMEOUT is not None:
        return LOAD_TIMEOUT
    try:
        limit = float(os.environ.get("SELNET_LOAD_TIMEOUT", _DEFAULT_TIMEOUT))
    except ValueError:  # a malformed setting is not the policy's fault: the default
        return _DEFAULT_TIMEOUT
    return limit if limit > 0 and limit != float("inf") else _DEFAULT_TIMEOUT


def _child(conn: multiprocessing.connection.Connection, path: str, sha256: str) -> None:
    import pickle

    from selnet.policy import extract as extractor
    from selnet.policy.cache import encode

    extractor.import_reader_only()  # this process reads one policy: setools' reader alone
    try:
        snap = extractor.extract(path, sha256)
        # The cache entry's payload, encoded here: the parent decodes it (a fraction of
        # unpickling the snapshot) and stores it as it is.
        try:
            result: tuple[str, object] = ("payload", encode(snap))
        except ValueError:
            result = ("ok", snap)
    except SelnetError as exc:
        result = ("error", (type(exc).__name__, str(exc)))
    except Exception as exc:  # the parent reports it on one line
        result = ("error", ("PolicyError", f"{path}: cannot read the policy ({exc})"))
    conn.send_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    conn.close()


def extract_guarded(
    path: str, sha256: str, timeout: float | None = None
) -> tuple[PolicySnapshot, bytes | None]:
    """:func:`extract` in a forked child with a time limit: a hang in libsepol becomes one
    clear error line instead of a process that never returns.  (The data comes back over
    a pipe from our own child, never from a file another user could write.)  Second
    item: the snapshot's cache payload (:func:`selnet.policy.cache.encode`) when the
    child made it, else None."""
    import multiprocessing
    import pickle

    from selnet.policy import extract as extractor

    limit = load_timeout() if timeout is None else timeout
    try:
        ctx = multiprocessing.get_context("fork")
    except ValueError:  # no fork on this platform: read it here
        return extractor.extract(path, sha256), None
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, path, sha256), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(limit):
            proc.kill()
            raise PolicyError(f"{path}: libsepol did not finish reading it in {limit:g} s "
                              "(a corrupt policy)")
        kind, value = pickle.loads(parent.recv_bytes())
    except EOFError:
        raise PolicyError(f"{path}: reading the policy crashed libsepol (a corrupt "
                          "policy)") from None
    finally:
        parent.close()
        proc.join(1)
        if proc.is_alive():
            proc.kill()
    if kind == "payload":
        assert isinstance(value, bytes)
        from selnet.policy.cache import decode_paused

        return decode_paused(value), value
    if kind == "ok":
        assert isinstance(value, PolicySnapshot)
        return value, None
    name, message = value
    from selnet import errors

    cls = getattr(errors, str(name), PolicyError)
    raise cls(str(message)) if isinstance(cls, type) and issubclass(cls, SelnetError) else \
        PolicyError(str(message))
