"""The compiled parallel launcher of :func:`bptt._parallel.run`.

``launch(address, args, bounds)`` calls the compiled kernel at ``address`` as
``kernel(*args, bounds[p], bounds[p + 1])`` for every part p, one part per thread of numba's
threading layer (OpenMP), and returns when all are done. Handing a part to a waiting
OpenMP thread and getting it back takes a few microseconds, against 20-60 for a Python worker
woken through a queue and the GIL.

How: the loop over the parts is the threading layer's own ``parallel_for`` (what numba's
``prange`` lowers to), called with a small function made here for the argument types, which
reads its part's bounds and the arguments and calls the kernel. The kernel is called through
its address, not by name: a launcher that named it would link a copy of the kernel's code into
its own and have LLVM optimise it all again (8 s for the LSTM time loop), and a kernel passed
as an argument makes numba key its cache on a dispatcher that differs from process to process
(compiled anew every time). A ``prange`` loop would compile in about a second per argument
types; this takes a tenth of that. ``bptt._parallel`` starts the threading layer (which
defines ``numba_parallel_for``) before the first launch.
"""

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import njit


@intrinsic
def _parallel_call(typingctx, address, args, bounds):
    """Parts p = 0 .. len(bounds) - 2 of the rows on the threading layer: the function at
    ``address``, compiled by numba for (*args, int64, int64) with no return value, is called
    as f(*args, bounds[p], bounds[p + 1]), at most numba's thread count at once. Its status
    is not checked: the kernels raise nothing (numpy's error model, no bounds checks)."""
    if not (isinstance(bounds, types.Array) and bounds.dtype == types.int64
            and bounds.ndim == 1 and bounds.layout == "C"):
        raise TypeError(f"bounds must be a C-contiguous 1-D int64 array, got {bounds}")
    argtys = tuple(args.types) + (types.int64, types.int64)

    def codegen(context, builder, signature, llargs):
        module = builder.module
        i8p = ir.IntType(8).as_pointer()
        intp = context.get_value_type(types.intp)
        payload_ty = ir.LiteralStructType([intp, context.get_value_type(args)])

        # the function each thread runs for its part: (char **args, intp *dims, intp *steps,
        # void *data), args[0] pointing at bounds[p], data at the payload
        part_fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [i8p.as_pointer(),
                                                                     intp.as_pointer(),
                                                                     intp.as_pointer(), i8p]),
                              name=module.get_unique_name("bptt_launch_part"))
        part_fn.linkage = "internal"
        pb = ir.IRBuilder(part_fn.append_basic_block())
        at = pb.bitcast(pb.load(part_fn.args[0]), intp.as_pointer())
        lo, hi = pb.load(at), pb.load(pb.gep(at, [intp(1)]))
        payload = pb.load(pb.bitcast(part_fn.args[3], payload_ty.as_pointer()))
        tup = pb.extract_value(payload, 1)
        values = [pb.extract_value(tup, i) for i in range(len(args.types))] + [lo, hi]
        fnty = context.call_conv.get_function_type(types.none, argtys)
        fn = pb.inttoptr(pb.extract_value(payload, 0), fnty.as_pointer())
        context.call_conv.call_function(pb, fn, types.none, argtys, values)
        pb.ret_void()

        address_v, args_v, bounds_v = llargs
        payload = cgutils.alloca_once(builder, payload_ty)
        builder.store(builder.insert_value(builder.insert_value(
            payload_ty(ir.Undefined), address_v, 0), args_v, 1), payload)
        arr = context.make_array(bounds)(context, builder, bounds_v)
        parts = builder.sub(arr.nitems, intp(1))
        arg0 = cgutils.alloca_once_value(builder, builder.bitcast(arr.data, i8p))
        dims = cgutils.alloca_once_value(builder, parts)
        steps = cgutils.alloca_once_value(builder, intp(8))
        get_num_threads = cgutils.get_or_insert_function(   # int get_num_threads(void)
            module, ir.FunctionType(ir.IntType(32), []), "get_num_threads")
        available = builder.sext(builder.call(get_num_threads, []), intp)
        team = builder.select(builder.icmp_signed("<", parts, available), parts, available)
        parallel_for = cgutils.get_or_insert_function(
            module, ir.FunctionType(ir.VoidType(), [i8p] * 5 + [intp] * 3),
            "numba_parallel_for")
        builder.call(parallel_for, [builder.bitcast(part_fn, i8p),
                                    builder.bitcast(arg0, i8p), builder.bitcast(dims, i8p),
                                    builder.bitcast(steps, i8p), builder.bitcast(payload, i8p),
                                    intp(0), intp(1), team])
        return context.get_dummy_value()

    return types.none(address, args, bounds), codegen


@njit
def launch(address, args, bounds):
    """Parts p = 0 .. len(bounds) - 2 of the rows, bounds[p]..bounds[p + 1], in parallel
    (bounds: int64, ascending)."""
    _parallel_call(address, args, bounds)
