"""Checkpoints: a model (its configuration and parameters), optionally an optimizer's state, and
any extra values, in one ``.npz`` file written atomically.

Layout of the file (a zip of ``.npy`` arrays, readable with ``np.load``):
``__meta__`` (a JSON string: format version, the model's class and configuration, parameter
names, random state of the model's random parts, the optimizer's class/config/steps, JSON-able
extras), ``param/<name>`` for every parameter, ``optim/<param>/<slot>`` for the optimizer's
per-parameter state, ``extra/<key>`` for extras that are numpy arrays.
"""

import io
import json
import os
import tempfile
import zipfile

import numpy as np

from .errors import CheckpointError
from .module import Module, module_config, module_from_config

FORMAT = "bptt-checkpoint"
VERSION = 1


class Checkpoint:
    """What :func:`load` returns: ``model``, ``optimizer`` (rebuilt over ``model``'s parameters,
    or None if none was saved), ``extra`` (a dict) and ``meta`` (the raw metadata)."""

    def __init__(self, model, optimizer, extra, meta):
        self.model, self.optimizer, self.extra, self.meta = model, optimizer, extra, meta

    def __repr__(self):
        return (f"Checkpoint(model={type(self.model).__name__}, optimizer="
                f"{type(self.optimizer).__name__ if self.optimizer else None}, "
                f"extra={sorted(self.extra)})")


def _jsonable(key, value):
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise TypeError(f"extra value {key!r} must be a numpy array or JSON-serialisable "
                        f"(numbers, strings, lists, dicts), got {type(value).__name__}") from None
    return value


def save(path, model, optimizer=None, **extra):
    """Write ``model`` (and ``optimizer``'s state, and ``extra`` values) to ``path`` atomically:
    the file is written beside its destination, flushed to disk, then renamed over it, so a
    crash leaves either the old file or the new one, never half of one."""
    if not isinstance(model, Module):
        raise TypeError(f"model must be a bptt Module, got {type(model).__name__}")
    arrays = {f"param/{k}": v for k, v in model.named_parameters().items()}
    meta = {"format": FORMAT, "version": VERSION, "model": module_config(model),
            "params": list(model.named_parameters()), "rng_state": model.get_rng_state(),
            "optimizer": None, "extra": {}, "extra_arrays": []}
    if optimizer is not None:
        sd = optimizer.state_dict()
        meta["optimizer"] = {k: v for k, v in sd.items() if k != "slots"}
        meta["optimizer"]["slot_names"] = {p: sorted(s) for p, s in sd["slots"].items()}
        for p, slots in sd["slots"].items():
            for name, arr in slots.items():
                arrays[f"optim/{p}/{name}"] = np.asarray(arr)
    for k, v in extra.items():
        if isinstance(v, np.ndarray):
            arrays[f"extra/{k}"] = v
            meta["extra_arrays"].append(k)
        else:
            meta["extra"][k] = _jsonable(k, v)
    arrays["__meta__"] = np.array(json.dumps(meta))
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def _read(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (damaged or not an .npz "
                              f"file: {e})") from None
    if "__meta__" not in arrays:
        raise CheckpointError(f"{path}: an .npz file but not a bptt checkpoint (no __meta__)")
    try:
        meta = json.loads(str(arrays.pop("__meta__")))
    except ValueError as e:
        raise CheckpointError(f"{path}: damaged checkpoint metadata ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a bptt checkpoint (format {meta.get('format')!r})")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {meta['version']} is newer "
                              f"than this bptt reads ({VERSION}); upgrade bptt")
    return meta, arrays


def load(path, model=None, optimizer=None):
    """Read a checkpoint written by :func:`save`.

    With no ``model``, the model is rebuilt from the saved configuration; with one, the saved
    parameters are loaded into it (names and shapes must match, else a
    :class:`~bptt.CheckpointError` says which differ). Likewise the optimizer: rebuilt over the
    model's parameters, or loaded into ``optimizer`` when given. Returns a
    :class:`Checkpoint`. Nothing is changed in a given model or optimizer if the file does not
    fit.
    """
    path = os.fspath(path)
    meta, arrays = _read(path)
    params = {k[len("param/"):]: v for k, v in arrays.items() if k.startswith("param/")}
    if model is None:
        try:
            model = module_from_config(meta["model"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: cannot rebuild the model from its saved "
                                  f"configuration ({e})") from None
    elif not isinstance(model, Module):
        raise TypeError(f"model must be a bptt Module, got {type(model).__name__}")
    try:
        model.load_parameters(params)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: the saved parameters do not fit the model: {e}") from None
    if meta.get("rng_state") is not None:
        model.set_rng_state(meta["rng_state"])
    opt = None
    if meta.get("optimizer") is not None:
        from .optim import optimizer_from_state_dict
        om = dict(meta["optimizer"])
        slot_names = om.pop("slot_names")
        sd = dict(om, slots={p: {s: arrays[f"optim/{p}/{s}"] for s in names}
                             for p, names in slot_names.items()})
        try:
            if optimizer is None:
                opt = optimizer_from_state_dict(sd, model.named_parameters())
            else:
                optimizer.load_state_dict(sd)
                opt = optimizer
        except (KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"{path}: the saved optimizer state does not fit: {e}") from None
    elif optimizer is not None:
        raise CheckpointError(f"{path}: holds no optimizer state to load into {optimizer!r}")
    extra = dict(meta.get("extra", {}))
    for k in meta.get("extra_arrays", []):
        extra[k] = arrays[f"extra/{k}"]
    return Checkpoint(model, opt, extra, meta)
