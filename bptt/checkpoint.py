"""Checkpoints: a model (its configuration and parameters), optionally an optimizer's state, and
any extra values, in one ``.npz`` file written atomically.

Layout of the file (a zip of ``.npy`` arrays, readable with ``np.load``):
``__meta__`` (a JSON string: format version, the model's class and configuration, parameter
names, random state of the model's random parts, the optimizer's class/config/steps, and the
skeletons of the extras and of the trainer's stream state), ``param/<name>`` for every
parameter, ``optim/<param>/<slot>`` for the optimizer's per-parameter state, and
``extra/<n>`` for every numpy array inside the extras and the trainer state.
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
    or None if none was saved), ``extra`` (a dict), ``trainer_state`` (a TBPTT stream state or
    None) and ``meta`` (the raw metadata)."""

    def __init__(self, model, optimizer, extra, meta, trainer_state=None):
        self.model, self.optimizer, self.extra, self.meta = model, optimizer, extra, meta
        self.trainer_state = trainer_state

    def __repr__(self):
        return (f"Checkpoint(model={type(self.model).__name__}, optimizer="
                f"{type(self.optimizer).__name__ if self.optimizer else None}, "
                f"extra={sorted(self.extra)})")


def _encode(value, key, arrays):
    """A JSON-able skeleton of ``value`` in which each numpy array is replaced by
    ``{"__array__": name}`` and stored in ``arrays`` under that name."""
    if isinstance(value, np.ndarray):
        name = f"extra/{len(arrays)}"
        arrays[name] = value
        return {"__array__": name}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"extra value {key!r}: dict keys must be strings")
        return {k: _encode(v, key, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, key, arrays) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"extra value {key!r} must be built of numpy arrays, numbers, strings, "
                    f"lists and dicts, got {type(value).__name__}")


def _decode(skeleton, arrays):
    if isinstance(skeleton, dict):
        if set(skeleton) == {"__array__"}:
            return arrays[skeleton["__array__"]]
        return {k: _decode(v, arrays) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [_decode(v, arrays) for v in skeleton]
    return skeleton


def save(path, model=None, optimizer=None, trainer=None, **extra):
    """Write ``model`` (and ``optimizer``'s state, a TBPTT ``trainer``'s stream state, and
    ``extra`` values) to ``path`` atomically: the file is written beside its destination,
    flushed to disk, then renamed over it, so a crash leaves either the old file or the new
    one, never half of one.

    trainer: a :class:`~bptt.TBPTT`; its model and optimizer are saved too (``model`` and
        ``optimizer`` may then be omitted), and its stream state (position, carried state,
        kept overlap, pending gradient) so that training resumes exactly.
    extra: values built of numpy arrays, numbers, strings, lists and dicts.
    """
    if trainer is not None:
        model = trainer.model if model is None else model
        optimizer = trainer.optimizer if optimizer is None else optimizer
        if model is not trainer.model or optimizer is not trainer.optimizer:
            raise ValueError("model and optimizer must be the trainer's own when a trainer "
                             "is given")
    if not isinstance(model, Module):
        raise TypeError(f"model must be a bptt Module, got {type(model).__name__}")
    arrays = {f"param/{k}": v for k, v in model.named_parameters().items()}
    meta = {"format": FORMAT, "version": VERSION, "model": module_config(model),
            "params": list(model.named_parameters()), "rng_state": model.get_rng_state(),
            "optimizer": None, "extra": None, "trainer": None}
    if optimizer is not None:
        sd = optimizer.state_dict()
        meta["optimizer"] = {k: v for k, v in sd.items() if k != "slots"}
        meta["optimizer"]["slot_names"] = {p: sorted(s) for p, s in sd["slots"].items()}
        for p, slots in sd["slots"].items():
            for name, arr in slots.items():
                arrays[f"optim/{p}/{name}"] = np.asarray(arr)
    stored = {}
    meta["extra"] = {k: _encode(v, k, stored) for k, v in extra.items()}
    if trainer is not None:
        meta["trainer"] = _encode(trainer.state_dict(), "trainer", stored)
    arrays.update(stored)
    arrays["__meta__"] = np.array(json.dumps(meta))
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; give it a normal file's mode
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


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _read(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
        if not data.startswith(b"PK"):
            raise CheckpointError(f"{path}: not a readable checkpoint (not an .npz file: it "
                                  "does not start as a zip archive)")
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (FileNotFoundError, CheckpointError):
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


def load(path, model=None, optimizer=None, trainer=None):
    """Read a checkpoint written by :func:`save`.

    With no ``model``, the model is rebuilt from the saved configuration; with one, the saved
    parameters are loaded into it (names and shapes must match, else a
    :class:`~bptt.CheckpointError` says which differ). Likewise the optimizer: rebuilt over the
    model's parameters, or loaded into ``optimizer`` when given. With a ``trainer`` (a
    :class:`~bptt.TBPTT`), everything is loaded into its model, its optimizer and its stream
    state, to continue training exactly where the saved run stood. Returns a
    :class:`Checkpoint` (``trainer_state`` holds the saved stream state, if any). The
    parameters are checked before anything is changed.
    """
    path = os.fspath(path)
    if trainer is not None:
        model, optimizer = trainer.model, trainer.optimizer
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
    try:
        extra = _decode(meta.get("extra") or {}, arrays)
        trainer_state = (None if meta.get("trainer") is None else
                         _decode(meta["trainer"], arrays))
    except KeyError as e:
        raise CheckpointError(f"{path}: damaged checkpoint, missing array {e}") from None
    if trainer is not None:
        if trainer_state is None:
            raise CheckpointError(f"{path}: holds no trainer state to resume {trainer!r}")
        try:
            trainer.load_state_dict(trainer_state)
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from None
    return Checkpoint(model, opt, extra, meta, trainer_state)
