"""Data-parallel TBPTT over MPI (bptt.distributed): n ranks on B streams against one process on
the same B streams, failures on one rank, non-finite values on one rank, checkpoints resumed
with another number of ranks.

Each test launches ``mpiexec -n N python tests/mpi_worker.py ...`` in a subprocess with a
timeout (a hang fails the test instead of blocking CI) and compares what the ranks wrote with
a single-process reference computed here.
"""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import bptt
import mpi_worker as W
from bptt.distributed import shard, shard_bounds

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "mpi_worker.py")
TIMEOUT = float(os.environ.get("BPTT_MPI_TIMEOUT", 120))  # per launch; a normal one takes ~2 s


def find_mpiexec():
    """The mpiexec of the MPI library mpi4py uses: $BPTT_MPIEXEC, else the one installed beside
    this Python (the ``mpich`` wheel puts it there), else the first on PATH."""
    if os.environ.get("BPTT_MPIEXEC"):
        return os.environ["BPTT_MPIEXEC"]
    for path in (os.path.dirname(sys.executable), None):
        for name in ("mpiexec", "mpirun"):
            found = shutil.which(name, path=path)
            if found:
                return found
    return None


MPIEXEC = find_mpiexec()
if importlib.util.find_spec("mpi4py") is None:
    needs_mpi = pytest.mark.skip(reason='mpi4py is not installed (pip install "bptt[mpi]")')
elif MPIEXEC is None:
    needs_mpi = pytest.mark.skip(reason="no mpiexec beside Python or on PATH (pip install "
                                 '"bptt[mpi]" installs MPICH\'s)')
else:
    needs_mpi = pytest.mark.skipif(False, reason="MPI is available")


def _descendants(pid):
    """Every process below ``pid`` (Linux /proc): MPICH's proxy and ranks each start a new
    session, so killing mpiexec's process group would not reach them."""
    children = {}
    for d in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill_tree(proc):
    """Stop a hung launch: SIGTERM to mpiexec (it tears its ranks down), then SIGKILL to
    whatever of the tree is left."""
    tree = _descendants(proc.pid)
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
    for pid in [proc.pid] + tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def mpirun(n, scenario, out, *args, mpi4py_main=False, check=True):
    """Launch the worker on ``n`` ranks; return (returncode, output) or fail on a timeout."""
    cmd = [MPIEXEC, "-n", str(n), sys.executable]
    cmd += ["-m", "mpi4py"] if mpi4py_main else []
    cmd += [WORKER, scenario, str(out), str(n), *map(str, args)]
    env = dict(os.environ)
    env.update({
        "HYDRA_LAUNCHER": "fork",  # MPICH: start local ranks directly, never through ssh
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",  # Open MPI
        "OMPI_MCA_rmaps_base_oversubscribe": "1", "PRTE_MCA_rmaps_default_mapping_policy":
        ":oversubscribe",  # Open MPI 4 / 5: more ranks than cores is fine for these sizes
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "NUMBA_NUM_THREADS": "1", "BPTT_NUM_THREADS": "1",
    })
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=HERE)
    t0 = time.monotonic()
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        output, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} hung: killed after {TIMEOUT:.0f} s\n{output[-4000:]}")
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode} after "
                    f"{time.monotonic() - t0:.1f} s\n{output[-4000:]}")
    return proc.returncode, output


def results(out, scenario, n):
    ranks = []
    for r in range(n):
        with open(os.path.join(out, f"{scenario}-{r}.json")) as f:
            ranks.append(json.load(f))
    return ranks


def npz(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def assert_params_close(got, want, rtol, atol=0.0, what=""):
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=rtol, atol=atol, err_msg=f"{what} {k}")


def relative_error(got, want):
    """max over parameters of |got - want| / max|want| (per parameter)."""
    return max(float(np.max(np.abs(got[k] - want[k])) / max(np.max(np.abs(want[k])), 1e-300))
               for k in want)


# -- in-process pieces (no mpiexec) -------------------------------------------------------------
def test_shard_bounds_cover_the_streams_unevenly():
    assert shard_bounds(5, 2) == [(0, 3), (3, 5)]
    assert shard_bounds(32, 3) == [(0, 11), (11, 22), (22, 32)]
    assert shard_bounds(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    with pytest.raises(ValueError, match="3 streams cannot be shared by 4 ranks"):
        shard_bounds(3, 4)
    x = np.arange(2 * 5 * 3).reshape(2, 5, 3)
    parts = [shard(x, r, 2) for r in range(2)]
    assert [p.shape for p in parts] == [(2, 3, 3), (2, 2, 3)]
    assert all(p.flags.c_contiguous for p in parts)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), x)
    assert shard(None, 0, 2) is None


def test_import_bptt_does_not_import_mpi():
    code = "import sys, bptt, bptt.distributed; assert 'mpi4py' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# -- n ranks against one process ---------------------------------------------------------------
def reference(mode, data, dtype=np.float64):
    trainer = W.build(mode, dtype, seed=100)  # rank 0's seed: its parameters are broadcast
    a, b = W.train(trainer, data)
    b.evaluate = trainer.evaluate(*data, chunk=5)
    return W.params_of(trainer), a, b


@needs_mpi
def test_two_ranks_match_one_process_float64(tmp_path):
    """5 streams split 3 + 2, random loss weights and resets, every TBPTT mode: the same
    parameters as one process on the 5 streams, to float64 round-off."""
    mpirun(2, "parity", tmp_path, "float64")
    ranks = results(tmp_path, "parity", 2)
    got = npz(tmp_path / "parity-float64.npz")
    for i, mode in enumerate(W.MODES):
        want, a, b = reference(mode, W.token_data())
        mine = {k.split("/", 1)[1]: v for k, v in got.items() if k.startswith(mode[0] + "/")}
        assert relative_error(mine, want) < 1e-12, mode[0]
        for r in ranks:  # every rank reports the global loss, and reduced once per chunk
            assert r[i]["updates"] == a.updates + b.updates
            np.testing.assert_allclose(r[i]["losses"], a.losses, rtol=1e-12)
            np.testing.assert_allclose(r[i]["loss"], b.loss, rtol=1e-12)
            np.testing.assert_allclose(r[i]["evaluate"], b.evaluate, rtol=1e-12)
            assert r[i]["reduces"] == 2 * -(-12 // mode[1])  # fit 12 steps, step 12 more
    # one buffer: every gradient, then W*loss, W and the failure flag, in float64
    n = W.build(W.MODES[0]).model.num_parameters()
    assert ranks[0][0]["nbytes"] == 8 * (n + 3)


@needs_mpi
def test_two_ranks_match_one_process_float32(tmp_path):
    """float32, 41 updates with clipping: close to the single-process run (the gradients are
    combined in a float64 buffer; what differs is float32 round-off in the forward and
    backward passes over 3 streams instead of 6)."""
    mpirun(2, "parity", tmp_path, "float32")
    got = {k.split("/", 1)[1]: v for k, v in npz(tmp_path / "parity-float32.npz").items()}
    want, a, b = reference(W.FLOAT32_MODE, W.float32_data(), np.float32)
    assert a.updates + b.updates == 41
    assert all(v.dtype == np.float32 for v in got.values())
    err = relative_error(got, want)
    assert err < 1e-5, err  # about 4e-7 here
    ranks = results(tmp_path, "parity", 2)
    np.testing.assert_allclose(ranks[0][0]["losses"], a.losses, rtol=1e-4)


# -- failures ------------------------------------------------------------------------------------
@needs_mpi
def test_a_failing_rank_stops_every_rank_without_a_hang(tmp_path):
    mpirun(2, "failures", tmp_path)
    r0, r1 = ({e["case"]: e for e in r} for r in results(tmp_path, "failures", 2))
    # engines built differently (k1 3 and 4): every rank refuses to start
    assert r0["config"]["error"] == r1["config"]["error"] == "ValueError"
    assert "k1 differs between ranks ([3, 4])" in r0["config"]["message"]
    # bad input on rank 1 only: rank 1 raises its ValueError, rank 0 a RuntimeError naming it
    assert r1["bad_input"]["error"] == "ValueError"
    assert r0["bad_input"]["error"] == "RuntimeError"
    assert "rank 1: ValueError" in r0["bad_input"]["message"]
    # a different number of steps on one rank: found before any chunk, everywhere
    assert r0["length"]["error"] == r1["length"]["error"] == "ValueError"
    assert "same number of time steps" in r0["length"]["message"]
    # an exception in the second chunk on rank 1: rank 0 is told through the reducer, both
    # restore the stream to the start of the failed chunk, and can carry on together
    assert r1["in_chunk"]["error"] == "FloatingPointError"
    assert r0["in_chunk"]["error"] == "RuntimeError"
    assert r0["in_chunk"]["position"] == r1["in_chunk"]["position"] == 3
    assert r0["continue"]["error"] is None and r0["continue"]["value"] == 2
    # fit's callback: raising on rank 0 stops both; returning False on rank 1 stops both
    assert r0["callback_raise"]["error"] == "OSError"
    assert r1["callback_raise"]["error"] == "RuntimeError"
    assert r0["callback_stop"]["value"] == r1["callback_stop"]["value"] == 2
    # checkpoints: rank 0 cannot write / read, every rank raises
    for case in ("save_fail", "load_fail"):
        assert r0[case]["error"] == "FileNotFoundError"
        assert r1[case]["error"] == "RuntimeError" and "rank 0" in r1[case]["message"]
    for case in r0:  # the ranks never went out of step (check_synchronized ran after each)
        assert r0[case]["position"] == r1[case]["position"], case


@needs_mpi
def test_an_uncaught_exception_on_one_rank_aborts_the_job_under_python_m_mpi4py(tmp_path):
    code, output = mpirun(2, "uncaught", tmp_path, mpi4py_main=True, check=False)
    assert code != 0 and "rank 1 fails on its own" in output


@needs_mpi
@pytest.mark.parametrize("on_nonfinite", ["skip", "raise"])
def test_a_nonfinite_loss_on_one_rank_skips_the_same_update_everywhere(on_nonfinite, tmp_path):
    """Huge inputs on a stream of rank 1 overflow the loss in the second chunk: both ranks skip
    that update (or both raise), and the parameters equal the single-process run's, which
    skips it too."""
    mpirun(2, "nonfinite", tmp_path, on_nonfinite)
    r0, r1 = results(tmp_path, "nonfinite", 2)
    x, y, resets = W.float_data()
    ref = W.build_float(on_nonfinite=on_nonfinite)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if on_nonfinite == "raise":
            with pytest.raises(bptt.NonFiniteError):
                ref.fit(x, y, resets=resets)
        else:
            rep = ref.fit(x, y, resets=resets)
    got = npz(tmp_path / f"nonfinite-{on_nonfinite}.npz")
    assert relative_error(got, W.params_of(ref)) < 1e-12
    if on_nonfinite == "raise":
        assert r0["error"] == r1["error"] == "NonFiniteError"
        assert r0["position"] == r1["position"] == ref.position == 3
        return
    assert r1["nonfinite"][0].startswith("non-finite loss at time step 4")
    for r in (r0, r1):
        assert (r["updates"], r["skipped"]) == (rep.updates, rep.skipped) == (3, 1)
        # the global loss, as one process reports it, also on rank 0 whose streams are finite
        assert r["losses"][1] == rep.losses[1] == np.inf and r["loss"] == np.inf
        np.testing.assert_allclose(np.array(r["losses"])[[0, 2, 3]],
                                   np.array(rep.losses)[[0, 2, 3]], rtol=1e-12)


# -- checkpoints ----------------------------------------------------------------------------------
@needs_mpi
def test_checkpoint_from_two_ranks_resumes_with_one_two_or_three(tmp_path):
    """Rank 0 writes the full model, Adam's state and the global stream state (carried state,
    kept overlap k2 > k1, a pending accumulated gradient) in the middle of a run; resuming it
    with 2 ranks continues bit for bit, with 1 or 3 ranks (streams re-split) or a plain
    single-process TBPTT to float64 round-off. With Dropout, only the same number of ranks
    can reproduce the masks."""
    mpirun(2, "ckpt_save", tmp_path)
    saved = results(tmp_path, "ckpt_save", 2)[0]
    assert saved["plain"] == {"pending": 1, "history": 2}
    for n in (1, 2, 3):
        mpirun(n, "ckpt_resume", tmp_path, tmp_path)
        for r in results(tmp_path, "ckpt_resume", n):
            assert r["plain"]["position"] == W.CKPT_SPLIT
            assert r["plain"]["extra"] == {"note": "saved by rank 0", "ranks": 2}
    full = {v: npz(tmp_path / f"full-{v}.npz") for v in ("plain", "dropout")}
    for v in ("plain", "dropout"):
        same = npz(tmp_path / f"resumed-{v}-n2.npz")
        for k in full[v]:
            np.testing.assert_array_equal(same[k], full[v][k], err_msg=f"{v} {k}")
    for n in (1, 3):
        got = npz(tmp_path / f"resumed-plain-n{n}.npz")
        assert relative_error(got, full["plain"]) < 1e-12, n
        # dropout: the re-split streams draw other masks, so the run continues, differently
        dropout = npz(tmp_path / f"resumed-dropout-n{n}.npz")
        assert all(np.isfinite(a).all() for a in dropout.values())
    # the checkpoint is an ordinary one: a single process without MPI continues from it
    trainer = W.build(W.CKPT_MODE, seed=7, adam=True)
    bptt.load(tmp_path / "ck-plain.npz", trainer=trainer)
    x, y, w, r = (v[W.CKPT_SPLIT:] for v in W.token_data())
    trainer.step(x, y, w, r)
    assert relative_error(W.params_of(trainer), full["plain"]) < 1e-12
