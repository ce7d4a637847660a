// The statevector machinery the kernels share (hea.cc, gates.cc): a state of 2**L amplitudes in two real
// planes (re, im); 2x2 gates applied W pairs of amplitudes at a time in vector registers; a batch of states
// shared among threads; the checks and error handling of their FFI handlers. Header-only, each kernel gets its
// own copy (an anonymous namespace).

#pragma once

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <exception>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {
struct Mat2 {  // a 2x2 complex matrix [[m00, m01], [m10, m11]]
  float r[4], i[4];
};

Mat2 dagger(const Mat2& x) { return {{x.r[0], x.r[2], x.r[1], x.r[3]}, {-x.i[0], -x.i[2], -x.i[1], -x.i[3]}}; }

#ifdef __AVX512F__
constexpr int W = 16;  // float lanes per vector: one AVX-512 register
#else
constexpr int W = 8;  // one AVX2 register (GCC lowers other widths to the machine's vectors)
#endif
using v16 = float __attribute__((vector_size(4 * W)));  // W float lanes (named for the AVX-512 case)
using i16 = int32_t __attribute__((vector_size(4 * W)));

v16 splat(float x) { return v16{} + x; }

float sum_lanes(v16 v) {
  float total = 0;
  for (int k = 0; k < W; ++k) total += v[k];
  return total;
}

// Shuffle masks that split 2W consecutive amplitudes into the W whose bit s = 2**B is clear (low) and the
// W whose bit s is set (high), for s < W, and back (first, second: position k of (first, second) takes lane
// p of low, index p, or of high, index W + p). They are compile-time constants: with a mask known only at
// run time GCC cannot pick a fixed permutation and, without AVX-512's two-table permute, moves lanes one
// by one (measured on an AVX2 machine: the kernel 4x slower than the XLA simulator instead of 2x faster).
constexpr int low_lane(int b, int p) { return ((p >> b) << (b + 1)) | (p & ((1 << b) - 1)); }
constexpr int back_lane(int b, int k) {
  const int p = ((k >> (b + 1)) << b) | (k & ((1 << b) - 1));
  return (k & (1 << b)) ? W + p : p;
}
template <int B, int... K>
struct ShufflesOf {
  static constexpr i16 low = i16{low_lane(B, K)...};
  static constexpr i16 high = i16{(low_lane(B, K) | (1 << B))...};
  static constexpr i16 first = i16{back_lane(B, K)...};
  static constexpr i16 second = i16{back_lane(B, K + W)...};
};
template <int B, typename Seq>
struct ShufflesFor;
template <int B, int... K>
struct ShufflesFor<B, std::integer_sequence<int, K...>> {
  using type = ShufflesOf<B, K...>;
};
template <int B>
using Shuffles = typename ShufflesFor<B, std::make_integer_sequence<int, W>>::type;

v16 load(const float* p) {
  v16 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
void store(float* p, v16 v) { __builtin_memcpy(p, &v, sizeof v); }

// The pairs of ``pairs`` for s = 2**B < W: within each 2W amplitudes, by constant shuffles.
template <int B, int NP, typename F>
void pairs_small(float* const* planes, int64_t n, F& f) {
  using M = Shuffles<B>;
  v16 x0[NP], x1[NP];
  for (int64_t c = 0; c < n; c += 2 * W) {
    for (int p = 0; p < NP; ++p) {
      const v16 a = load(planes[p] + c), z = load(planes[p] + c + W);
      x0[p] = __builtin_shuffle(a, z, M::low);
      x1[p] = __builtin_shuffle(a, z, M::high);
    }
    f(x0, x1);
    for (int p = 0; p < NP; ++p) {
      store(planes[p] + c, __builtin_shuffle(x0[p], x1[p], M::first));
      store(planes[p] + c + W, __builtin_shuffle(x0[p], x1[p], M::second));
    }
  }
}

// For every pair of amplitudes (k, k + s) with bit s of k clear (s = 2**(L-1-q): the pairs a gate on qubit
// q mixes), call f(x0, x1) on W pairs at a time, for each of the NP planes, and store what f leaves.
// Needs n >= 2W.
template <int NP, typename F>
void pairs(float* const* planes, int64_t n, int64_t s, F&& f) {
  v16 x0[NP], x1[NP];
  if (s >= W) {
    for (int64_t base = 0; base < n; base += 2 * s)
      for (int64_t j = base; j < base + s; j += W) {
        for (int p = 0; p < NP; ++p) x0[p] = load(planes[p] + j), x1[p] = load(planes[p] + j + s);
        f(x0, x1);
        for (int p = 0; p < NP; ++p) store(planes[p] + j, x0[p]), store(planes[p] + j + s, x1[p]);
      }
    return;
  }
  switch (__builtin_ctzll(s)) {
    case 0: return pairs_small<0, NP>(planes, n, f);
    case 1: return pairs_small<1, NP>(planes, n, f);
    case 2: return pairs_small<2, NP>(planes, n, f);
    default:
      if constexpr (W > 8) return pairs_small<3, NP>(planes, n, f);
  }
}

// (x0, x1) <- m (x0, x1) for planes (re, im) at offsets o (re) and o + 1 (im).
inline void rotate(const Mat2& m, v16* x0, v16* x1, int o) {
  const v16 r0 = x0[o], i0 = x0[o + 1], r1 = x1[o], i1 = x1[o + 1];
  x0[o] = m.r[0] * r0 - m.i[0] * i0 + m.r[1] * r1 - m.i[1] * i1;
  x0[o + 1] = m.r[0] * i0 + m.i[0] * r0 + m.r[1] * i1 + m.i[1] * r1;
  x1[o] = m.r[2] * r0 - m.i[2] * i0 + m.r[3] * r1 - m.i[3] * i1;
  x1[o + 1] = m.r[2] * i0 + m.i[2] * r0 + m.r[3] * i1 + m.i[3] * r1;
}

// psi <- m psi on the qubit with stride s.
void apply2(float* re, float* im, int64_t n, int64_t s, const Mat2& m) {
  float* planes[2] = {re, im};
  pairs<2>(planes, n, s, [&](v16* x0, v16* x1) { rotate(m, x0, x1, 0); });
}

void load(const std::complex<float>* x, float* re, float* im, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    re[k] = x[k].real();
    im[k] = x[k].imag();
  }
}

// psi <- phase * psi elementwise, or conj(phase) * psi with conjugate (to undo the ring).
void multiply_phase(float* re, float* im, const float* phr, const float* phi, int64_t n, bool conjugate) {
  const float sign = conjugate ? -1.0f : 1.0f;
  for (int64_t k = 0; k < n; ++k) {
    const float a = re[k], b = im[k], pi = sign * phi[k];
    re[k] = a * phr[k] - b * pi;
    im[k] = a * pi + b * phr[k];
  }
}

// Threads for a batch: at most ``limit`` (the caller's count: the CPUs this process may use, which
// std::thread::hardware_concurrency() does not know under an affinity mask or a cgroup quota), and one per
// 2**16 amplitudes at most (starting a thread costs about as much as simulating a few thousand amplitudes).
int64_t n_threads(int64_t batch, int64_t dim, int64_t limit) {
  return std::max<int64_t>(1, std::min(limit, batch * dim >> 16));
}

// body(k, first, last) for the t chunks k of the batch, t - 1 of them on new threads and one on this one.
// Where the system refuses a thread (std::system_error, or no memory for it), this thread runs the chunks
// left. An exception in a chunk (std::bad_alloc from a vector, say) is caught in the thread that ran it and
// recorded, since one leaving a thread would end the process (std::terminate); once every thread is joined,
// the first chunk's exception is rethrown here, for the handler to report (``guarded``).
template <typename F>
void parallel(int64_t t, int64_t batch, F&& body) {
  std::vector<std::exception_ptr> failures(t);  // before any thread: a bad_alloc here leaves nothing running
  auto chunk = [&](int64_t k) noexcept {
    try {
      body(k, batch * k / t, batch * (k + 1) / t);
    } catch (...) {
      failures[k] = std::current_exception();
    }
  };
  std::vector<std::thread> pool;
  int64_t k = 1;
  try {
    pool.reserve(t - 1);
    for (; k < t; ++k) pool.emplace_back(chunk, k);
  } catch (...) {  // chunk k did not start: this thread runs it and the rest
  }
  chunk(0);
  for (int64_t j = k; j < t; ++j) chunk(j);
  for (auto& th : pool) th.join();
  for (const auto& failure : failures)
    if (failure) std::rethrow_exception(failure);
}

// "(3, 4)": a buffer's dimensions, for error messages.
std::string shape(ffi::Span<const int64_t> dims) {
  std::string out = "(";
  for (size_t k = 0; k < dims.size(); ++k) out += (k ? ", " : "") + std::to_string(dims[k]);
  return out + (dims.size() == 1 ? ",)" : ")");
}

bool same_dims(ffi::Span<const int64_t> a, ffi::Span<const int64_t> b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

// A handler's work, run() (its checks first), with any exception it throws, on this thread or rethrown by
// ``parallel``, returned as an error instead: an exception must not cross the FFI boundary into XLA (the
// process would end). Memory that could not be allocated is RESOURCE_EXHAUSTED, anything else INTERNAL.
template <typename F>
ffi::Error guarded(const char* kernel, F&& run) noexcept {
  try {
    return run();
  } catch (const std::bad_alloc& e) {
    return ffi::Error(ffi::ErrorCode::kResourceExhausted, std::string(kernel) + ": out of memory (" + e.what() + ")");
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string(kernel) + ": " + e.what());
  } catch (...) {
    return ffi::Error::Internal(std::string(kernel) + ": an unknown exception");
  }
}

}  // namespace
