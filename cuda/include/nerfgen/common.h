// Macros shared by every kernel header: one definition of a function for nvcc's device pass,
// nvcc's host pass and g++ (the CPU twin).
#pragma once

#if defined(__CUDACC__)
#define HD __host__ __device__ __forceinline__
#else
#define HD inline
#endif

#if defined(__CUDA_ARCH__)  // nvcc's device pass
#define NERFGEN_UNROLL _Pragma("unroll")
#elif defined(__GNUC__) && !defined(__CUDACC__)  // g++ and clang++ (not nvcc's host pass)
#define NERFGEN_UNROLL _Pragma("GCC unroll 8")
#else
#define NERFGEN_UNROLL
#endif

#include <cmath>

namespace nerfgen {

// Elementary functions callable from device and host code, for float and double.
#if defined(__CUDA_ARCH__)
#define NERFGEN_MATH(name, f32, f64)          \
  HD float name(float x) { return ::f32(x); } \
  HD double name(double x) { return ::f64(x); }
#else
#define NERFGEN_MATH(name, f32, f64)              \
  HD float name(float x) { return std::f64(x); }  \
  HD double name(double x) { return std::f64(x); }
#endif
NERFGEN_MATH(floor_of, floorf, floor)
NERFGEN_MATH(ceil_of, ceilf, ceil)
NERFGEN_MATH(exp_of, expf, exp)
NERFGEN_MATH(log_of, logf, log)
#undef NERFGEN_MATH

// a * b rounded on its own, never fused into a following add (an FMA would change frac by up to
// an ulp of x N_l and break agreement with the torch twin). nvcc fuses by default, hence the
// intrinsics; host builds must pass -ffp-contract=off (g++ fuses under -march with FMA).
HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

template <typename T>
HD T min_of(T a, T b) { return b < a ? b : a; }
template <typename T>
HD T max_of(T a, T b) { return a < b ? b : a; }

}  // namespace nerfgen
