"""tanh, σ and exp for compiled kernels, inlined into their loops so that LLVM vectorises them.

numba's ``math.tanh`` calls libm one element at a time (this llvmlite has no vector math
library): in float32 that alone would cost more than a step's matrix product. Here float32 uses
a rational approximation, Eigen's ``generic_fast_tanh_float`` (a [13/6] minimax fit on
[−7.9053, 7.9053], clamped beyond), which stays within 6 ulp (3.6e-7 relative) of the true tanh
— tested against float64 in ``tests/nn/test_kernels.py`` — and runs branch-free, eight lanes at a
time, about five times as fast as NumPy's tanh. float64 keeps libm's tanh: that is the path the
equality tests hold to 1e-12, not the one that needs speed.

σ(x) = ½ + ½·tanh(x/2), the same arithmetic as the NumPy reference (``functional.sigmoid``).

exp in float32 is Cephes' ``expf``: x = n·ln 2 + r with |r| ≤ ½ ln 2 (ln 2 in two parts, so r is
exact), e^r by a degree-7 polynomial, and 2ⁿ made from its bits in two halves (``_two_to``);
within 2 ulp of the true exp (tested), 0 below −87.3 (where the float32 result would be
subnormal), inf above ln(max float32) = 88.72 as for the true exp — under a nanosecond where
libm's expf, called one element at a time, takes several. float64: libm's.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

# Eigen's coefficients (Eigen/src/Core/MathFunctionsImpl.h): tanh(x) ≈ x·p(x²)/q(x²)
TANH_CLAMP = 7.90531110763549805
TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
          1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)  # highest power first
TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)
P6, P5, P4, P3, P2, P1, P0 = (np.float32(c) for c in TANH_P)
Q3, Q2, Q1, Q0 = (np.float32(c) for c in TANH_Q)
CLAMP = np.float32(TANH_CLAMP)


def tanh(x):
    """tanh of one float, for use inside kernels (float32: the rational fit; float64: libm)."""
    return math.tanh(x)


@overload(tanh, inline="always")
def _tanh(x):
    if x != types.float32:
        return lambda x: math.tanh(x)

    def tanh32(x):
        x = min(max(x, -CLAMP), CLAMP)
        x2 = x * x
        p = ((((((P6 * x2 + P5) * x2 + P4) * x2 + P3) * x2 + P2) * x2 + P1) * x2 + P0) * x
        q = ((Q3 * x2 + Q2) * x2 + Q1) * x2 + Q0
        return p / q

    return tanh32


def sigmoid(x):
    """σ of one float, for use inside kernels, in the float's own precision."""
    return 0.5 + 0.5 * math.tanh(0.5 * x)


@overload(sigmoid, inline="always")
def _sigmoid(x):
    half = np.float32(0.5) if x == types.float32 else 0.5  # a float64 constant would promote float32 math
    return lambda x: tanh(x * half) * half + half


# Cephes' expf (cephes/single/expf.c): e^r = 1 + r + r²·p(r) on |r| ≤ ½ ln 2
LOG2E, LN2_HI, LN2_LO = np.float32(1.44269504088896341), np.float32(0.693359375), np.float32(-2.12194440e-4)
E5, E4, E3, E2, E1, E0 = (np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                                                      1.6666665459e-1, 5.0000001201e-1))
EXP_LO, EXP_HI = np.float32(-87.33654), np.float32(88.73)  # e^x is subnormal below, infinite above


@intrinsic
def _two_to(typingctx, n):
    """2ⁿ as a float32, for an integer −126 ≤ n ≤ 127: the exponent field n + 127, a zero mantissa."""
    if not isinstance(n, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        value = args[0] if n.bitwidth == 32 else builder.trunc(args[0], i32) if n.bitwidth > 32 else builder.sext(args[0], i32)
        bits = builder.shl(builder.add(value, ir.Constant(i32, 127)), ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(n), codegen


def exp(x):
    """e^x of one float, for use inside kernels (float32: Cephes' expf; float64: libm)."""
    return math.exp(x)


@overload(exp, inline="always")
def _exp(x):
    if x != types.float32:
        return lambda x: math.exp(x)

    def exp32(x):
        y = min(max(x, EXP_LO), EXP_HI)
        n = np.floor(y * LOG2E + np.float32(0.5))  # a float32 (math.floor would make an int64, and the rest float64)
        r = y - n * LN2_HI - n * LN2_LO
        p = (((((E5 * r + E4) * r + E3) * r + E2) * r + E1) * r + E0) * (r * r) + r + np.float32(1)
        k = np.int32(n)  # −126 … 128: each half of 2ᵏ within a float32's exponents
        half = k >> 1
        return p * _two_to(half) * _two_to(k - half) * np.float32(x >= EXP_LO)  # (a select here: numba warns on inlining it)

    return exp32
