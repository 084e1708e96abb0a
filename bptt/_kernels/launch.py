"""The compiled parallel launcher of :func:`bptt._parallel.run`.

``launch(address, args, bounds)`` calls the compiled kernel at ``address`` as
``kernel(*args, bounds[p], bounds[p + 1])`` for every part p, on numba's threading layer (a
``prange`` over the parts, a part per thread). Handing a part to a waiting OpenMP thread and
getting it back takes a few microseconds, against 20-60 for a Python worker woken through a
queue and the GIL.

The kernel is called through its address, not by name: a launcher that named it would link a
copy of the kernel's code into its own and have LLVM optimise it all again (8 s for the LSTM
time loop), and a kernel passed as an argument makes numba key its cache on a dispatcher that
differs from process to process (compiled anew every time). Through the address, ``launch``
is compiled once per tuple of argument types (a fraction of a second) and cached.
"""

from numba import prange, types
from numba.extending import intrinsic

from .._config import njit


@intrinsic
def _call(typingctx, address, args, lo, hi):
    """Call the function at ``address``, compiled by numba for (*args, lo, hi) with no
    return value, in numba's calling convention. Its status is not checked: the kernels
    raise nothing (numpy's error model, no bounds checks)."""
    argtys = tuple(args.types) + (lo, hi)

    def codegen(context, builder, signature, llargs):
        values = [builder.extract_value(llargs[1], i) for i in range(len(args.types))]
        fnty = context.call_conv.get_function_type(types.none, argtys)
        fn = builder.inttoptr(llargs[0], fnty.as_pointer())
        context.call_conv.call_function(builder, fn, types.none, argtys,
                                        values + [llargs[2], llargs[3]])
        return context.get_dummy_value()

    return types.none(address, args, lo, hi), codegen


@njit(parallel=True)
def launch(address, args, bounds):
    """Parts p = 0 .. len(bounds) - 2 of the rows, bounds[p]..bounds[p + 1], in parallel."""
    for p in prange(bounds.shape[0] - 1):
        _call(address, args, bounds[p], bounds[p + 1])
