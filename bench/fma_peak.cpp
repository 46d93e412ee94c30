// The CPU's fp32 FMA peak, measured: each thread runs 12 independent chains of 8-lane AVX2 FMAs
// (enough to cover the FMA latency on both pipes), in inline assembly so the compiler cannot fold
// them. Prints one line: threads, seconds, GFLOP/s (2 FLOPs an FMA lane).
// Built and run by bench/mlp.py: g++ -O2 -mavx2 -mfma -fopenmp fma_peak.cpp
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#define FMA(r) "vfmadd231ps %%ymm14, %%ymm15, %%ymm" #r "\n\t"

static void chains(long n) {
  asm volatile(
      "vxorps %%ymm14, %%ymm14, %%ymm14\n\tvxorps %%ymm15, %%ymm15, %%ymm15\n\t"
      "1:\n\t" FMA(0) FMA(1) FMA(2) FMA(3) FMA(4) FMA(5) FMA(6) FMA(7) FMA(8) FMA(9) FMA(10) FMA(11)
      "dec %0\n\tjnz 1b\n\t"
      : "+r"(n)
      :
      : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm14", "xmm15");
}

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
  const long iterations = argc > 2 ? std::atol(argv[2]) : 200000000L;
  omp_set_num_threads(threads);
  const auto start = std::chrono::steady_clock::now();
#pragma omp parallel
  chains(iterations);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d %.4f %.2f\n", threads, seconds, 12.0 * 8 * 2 * iterations * threads / seconds / 1e9);
  return 0;
}
