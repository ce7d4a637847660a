// Statevector kernel of the paper's hardware-efficient ansatz, forward and adjoint gradient, as XLA FFI
// handlers for JAX on CPU (qrobust.models.native builds and registers it).
//
// Circuit (L qubits, depth d; qubit 0 is the most significant bit of a basis index): every layer l
// applies G = RX(c) RY(b) RX(a) to each qubit q with rot[l, q] != 0, then the diagonal ring
// prod_i RZZ(e_i) over the pairs (i, i+1 mod L) with pair[l, i] != 0; RX(t) = exp(-i t X / 2), likewise
// RY, RZZ(t) = exp(-i t Z Z / 2). params[l, q, :] = (a, b, c, e). Output per state:
// logit = scale * <Z_{L-1}>.
//
// Each state is simulated on its own in two real planes (re, im) of 2**L floats, so it stays in cache;
// the states of a batch are shared among threads. The three rotations of a qubit are applied as one 2x2
// matrix G, whose entries are held in registers (local values, which no store through a plane can change).
// A gate on a qubit at a stride s of a vector's width W or more combines whole vectors (x0 at j, x1 at
// j + s); one at a smaller stride S combines each vector with itself, lanes swapped (lane k with lane
// k ^ S), the matrix entries as per-lane coefficients: one permutation per plane, and nothing to move
// back. (So the qubits need no relabelling to keep the frequently used ones away from the small strides:
// measured, the permutation of each state in and out cost more than it saved.)
//
// The gradient is the adjoint method, in two calls: the forward pass that the gradient needs
// (``ForwardStates``) also returns each final state psi, which the backward pass (``Backward``) starts
// from: the costate lambda = d logit / d psi* = scale * Z_{L-1} psi, then every operation is undone on
// psi and lambda in reverse order (each qubit's G^dagger in one pass over the pairs), and a gate
// exp(-i t P / 2) contributes d logit / dt = Im <lambda|P|psi> (psi, lambda just after the gate). For
// G = RX(c) RY(b) RX(a) the three come from the overlaps (Ix, Iy, Iz) = Im <lambda|(X, Y, Z)|psi> taken
// after G, in the pass that undoes it: d/dc = Ix, d/db = Im <lambda|V_b Y V_b^dagger|psi> with
// V_b = RX(c), and d/da = Im <lambda|V_a X V_a^dagger|psi> with V_a = RX(c) RY(b); a Pauli conjugated by
// a 2x2 unitary is n . (X, Y, Z) with n real (computed per call, in double), so each is n . (Ix, Iy, Iz).

#include <atomic>

#include "statevector.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// -- the circuit's matrices, in double, from the parameters (once per call) ---------------------------------

using cd = std::complex<double>;
struct M2d {  // [[m0, m1], [m2, m3]]
  cd m[4];
};
M2d operator*(const M2d& x, const M2d& y) {
  return {{x.m[0] * y.m[0] + x.m[1] * y.m[2], x.m[0] * y.m[1] + x.m[1] * y.m[3],
           x.m[2] * y.m[0] + x.m[3] * y.m[2], x.m[2] * y.m[1] + x.m[3] * y.m[3]}};
}
M2d adjoint(const M2d& x) { return {{std::conj(x.m[0]), std::conj(x.m[2]), std::conj(x.m[1]), std::conj(x.m[3])}}; }
M2d rx(double t) { return {{std::cos(t / 2), cd(0, -std::sin(t / 2)), cd(0, -std::sin(t / 2)), std::cos(t / 2)}}; }
M2d ry(double t) { return {{std::cos(t / 2), -std::sin(t / 2), std::sin(t / 2), std::cos(t / 2)}}; }
const M2d kX = {{0, 1, 1, 0}}, kY = {{0, cd(0, -1), cd(0, 1), 0}};
Mat2 to_float(const M2d& x) {
  Mat2 y;
  for (int k = 0; k < 4; ++k) y.r[k] = static_cast<float>(x.m[k].real()), y.i[k] = static_cast<float>(x.m[k].imag());
  return y;
}
// n with v P v^dagger = n . (X, Y, Z): the matrix is [[n_z, n_x - i n_y], [n_x + i n_y, -n_z]].
void pauli_vector(const M2d& v, const M2d& p, double* n) {
  const M2d m = v * p * adjoint(v);
  n[0] = m.m[1].real(), n[1] = -m.m[1].imag(), n[2] = m.m[0].real();
}

// n floats aligned to 64 bytes (a cache line: a vector load never straddles two), zeroed. Movable (the
// vector's buffer, and data() with it, stays put), not copyable.
class Floats {
 public:
  Floats() = default;
  Floats(const Floats&) = delete;
  Floats& operator=(const Floats&) = delete;
  Floats(Floats&&) = default;
  Floats& operator=(Floats&&) = default;
  explicit Floats(int64_t n) : storage_(n + 16, 0.0f) {
    const auto address = reinterpret_cast<uintptr_t>(storage_.data());
    data_ = storage_.data() + ((64 - address % 64) % 64) / sizeof(float);
  }
  float* data() { return data_; }
  const float* data() const { return data_; }
  float& operator[](int64_t k) { return data_[k]; }

 private:
  std::vector<float> storage_;
  float* data_ = nullptr;
};

struct Gate {
  int64_t index;  // l * L + q: its gradient goes to grad[4 * index + (0, 1, 2)]
  int bit;        // its qubit's bit in an amplitude's index, L - 1 - q: stride 2**bit
  Mat2 g, undo;   // G = RX(c) RY(b) RX(a), G^dagger
  double da[3], db[3];  // d/da = da . (Ix, Iy, Iz), d/db = db . (Ix, Iy, Iz), d/dc = Ix (overlaps after G)
};

struct Circuit {
  int64_t n_qubits, depth, dim;
  std::vector<Gate> gates;             // layer by layer
  std::vector<int64_t> first;          // (d + 1,) the gates of layer l: [first[l], first[l + 1])
  std::vector<std::vector<int>> ring;  // (d,) the pairs i of layer l's ring (empty: no ring)
  Floats ph_r, ph_i;                   // (d, dim) ring phases (where layer l has a ring)
  // z_i z_{i+1} at amplitude j W + k (block j, lane k) is zz_block[i, j] zz_lane[i, k]: each of the two bits is
  // either one of the lane's (below W) or one of the block's
  Floats zz_block;                     // (L, dim / W)
  Floats zz_lane;                      // (L, W)
  Floats z_last;                       // (dim,) z_{L-1}
};

Circuit build(const float* params, const int32_t* rot, const int32_t* pair, int64_t L, int64_t d) {
  Circuit c;
  c.n_qubits = L, c.depth = d, c.dim = int64_t{1} << L;
  const int64_t n = c.dim;
  c.first.push_back(0);
  c.ring.resize(d);
  for (int64_t l = 0; l < d; ++l) {
    for (int64_t q = 0; q < L; ++q) {
      if (rot[l * L + q]) {
        const float* p = params + 4 * (l * L + q);
        const M2d rc = rx(p[2]), rb = ry(p[1]), g = rc * rb * rx(p[0]);
        Gate gate{l * L + q, static_cast<int>(L - 1 - q), to_float(g), to_float(adjoint(g)), {}, {}};
        pauli_vector(rc * rb, kX, gate.da);
        pauli_vector(rc, kY, gate.db);
        c.gates.push_back(gate);
      }
      if (pair[l * L + q]) c.ring[l].push_back(static_cast<int>(q));
    }
    c.first.push_back(static_cast<int64_t>(c.gates.size()));
  }
  auto sign = [&](int64_t k, int64_t q) { return 1 - 2 * static_cast<int>((k >> (L - 1 - q)) & 1); };
  c.zz_block = Floats(L * (n / W));
  c.zz_lane = Floats(L * W);
  for (int64_t i = 0; i < L; ++i) {
    for (int64_t j = 0; j < n / W; ++j)  // lane 0: the lane's bits clear
      c.zz_block[i * (n / W) + j] = static_cast<float>(sign(j * W, i) * sign(j * W, (i + 1) % L));
    for (int64_t k = 0; k < W; ++k)  // block 0: the block's bits clear
      c.zz_lane[i * W + k] = static_cast<float>(sign(k, i) * sign(k, (i + 1) % L));
  }
  c.z_last = Floats(n);
  for (int64_t k = 0; k < n; ++k) c.z_last[k] = static_cast<float>(sign(k, L - 1));
  // Ring phases prod_i exp(-i e_i z_i z_{i+1} / 2), in double, built qubit by qubit over the index's
  // leading bits (t[m] for the prefix m of qubits 0..j: one complex product per entry), then the ring closed.
  c.ph_r = Floats(d * n);
  c.ph_i = Floats(d * n);
  std::vector<cd> t(n), next(n);
  for (int64_t l = 0; l < d; ++l) {
    if (c.ring[l].empty()) continue;
    cd f[20][2];  // f[i][s]: the factor of pair i where z_i z_{i+1} = 1 - 2 s
    for (int64_t i = 0; i < L; ++i) {
      const double e = pair[l * L + i] ? params[4 * (l * L + i) + 3] : 0.0;
      f[i][0] = std::polar(1.0, -e / 2), f[i][1] = std::polar(1.0, e / 2);
    }
    t[0] = 1, t[1] = 1;
    for (int64_t j = 1; j < L; ++j) {  // prefixes of qubits 0..j from those of 0..j-1
      for (int64_t m = 0; m < (int64_t{1} << j); ++m)
        for (int64_t b = 0; b < 2; ++b) next[2 * m + b] = t[m] * f[j - 1][(m & 1) ^ b];
      std::swap(t, next);
    }
    for (int64_t k = 0; k < n; ++k) {
      const cd ph = t[k] * f[L - 1][(k & 1) ^ (k >> (L - 1))];
      c.ph_r[l * n + k] = static_cast<float>(ph.real());
      c.ph_i[l * n + k] = static_cast<float>(ph.imag());
    }
  }
  return c;
}

// -- passes over one state -----------------------------------------------------------------------------------

// Lane k ^ S of a vector, for every lane k: the partner of lane k for a qubit at stride S < W.
template <int S, int... K>
constexpr i16 swap_mask(std::integer_sequence<int, K...>) {
  return i16{(K ^ S)...};
}
template <int S>
inline v16 swapped(v16 v) {
  constexpr i16 mask = swap_mask<S>(std::make_integer_sequence<int, W>{});
  return __builtin_shuffle(v, mask);
}
// Per lane: x where bit S of the lane is clear, y where it is set.
template <int S>
inline v16 by_lane(float x, float y) {
  v16 v;
  for (int k = 0; k < W; ++k) v[k] = (k & S) ? y : x;
  return v;
}

// The entries of a 2x2 matrix, splat into registers (local values: nothing a store could change).
struct Splat {
  v16 r0, i0, r1, i1, r2, i2, r3, i3;
  explicit Splat(const Mat2& m)
      : r0(splat(m.r[0])), i0(splat(m.i[0])), r1(splat(m.r[1])), i1(splat(m.i[1])),
        r2(splat(m.r[2])), i2(splat(m.i[2])), r3(splat(m.r[3])), i3(splat(m.i[3])) {}
};
// (x0, x1) <- m (x0, x1), planes (re, im).
inline void rotate(const Splat& m, v16& r0, v16& i0, v16& r1, v16& i1) {
  const v16 a = r0, b = i0, x = r1, y = i1;
  r0 = m.r0 * a - m.i0 * b + m.r1 * x - m.i1 * y;
  i0 = m.r0 * b + m.i0 * a + m.r1 * y + m.i1 * x;
  r1 = m.r2 * a - m.i2 * b + m.r3 * x - m.i3 * y;
  i1 = m.r2 * b + m.i2 * a + m.r3 * y + m.i3 * x;
}
// The same for a qubit at stride S < W, per lane: x <- D x + O swapped(x), D = m0 | m3, O = m1 | m2.
template <int S>
struct SplatLanes {
  v16 dr, di, orr, oi;
  explicit SplatLanes(const Mat2& m)
      : dr(by_lane<S>(m.r[0], m.r[3])), di(by_lane<S>(m.i[0], m.i[3])), orr(by_lane<S>(m.r[1], m.r[2])),
        oi(by_lane<S>(m.i[1], m.i[2])) {}
};
template <int S>
inline void rotate_lanes(const SplatLanes<S>& m, v16& r, v16& i, v16 sr, v16 si) {
  const v16 a = r, b = i;
  r = m.dr * a - m.di * b + m.orr * sr - m.oi * si;
  i = m.dr * b + m.di * a + m.orr * si + m.oi * sr;
}

// Multiplies (r, i) by the phases (phr, phi) at k.
inline void times_phase(v16& r, v16& i, const float* __restrict phr, const float* __restrict phi, int64_t k) {
  const v16 a = r, c = load(phr + k), s = load(phi + k);
  r = a * c - i * s;
  i = a * s + i * c;
}

// psi <- g psi on the qubit at stride 2**bit, then psi <- phase psi elementwise where phr is not null (the
// layer's ring, in the pass of its last rotation).
template <int S>
void apply_lanes(float* __restrict re, float* __restrict im, int64_t n, const Mat2& g, const float* __restrict phr,
                 const float* __restrict phi) {
  const SplatLanes<S> m(g);
  for (int64_t k = 0; k < n; k += W) {
    v16 r = load(re + k), i = load(im + k);
    rotate_lanes(m, r, i, swapped<S>(r), swapped<S>(i));
    if (phr) times_phase(r, i, phr, phi, k);
    store(re + k, r), store(im + k, i);
  }
}
void apply(float* __restrict re, float* __restrict im, int64_t n, int bit, const Mat2& g,
           const float* __restrict phr = nullptr, const float* __restrict phi = nullptr) {
  const int64_t s = int64_t{1} << bit;
  if (s >= W) {
    const Splat m(g);
    for (int64_t base = 0; base < n; base += 2 * s)
      for (int64_t j = base; j < base + s; j += W) {
        v16 r0 = load(re + j), i0 = load(im + j), r1 = load(re + j + s), i1 = load(im + j + s);
        rotate(m, r0, i0, r1, i1);
        if (phr) times_phase(r0, i0, phr, phi, j), times_phase(r1, i1, phr, phi, j + s);
        store(re + j, r0), store(im + j, i0), store(re + j + s, r1), store(im + j + s, i1);
      }
    return;
  }
  switch (bit) {
    case 0: return apply_lanes<1>(re, im, n, g, phr, phi);
    case 1: return apply_lanes<2>(re, im, n, g, phr, phi);
    case 2: return apply_lanes<4>(re, im, n, g, phr, phi);
    default:
      if constexpr (W > 8) return apply_lanes<8>(re, im, n, g, phr, phi);
  }
}

// One backward pass of a gate: (Ix, Iy, Iz) = Im <lambda|(X, Y, Z)|psi> on its qubit (psi, lambda after the
// gate) into overlap, and psi, lambda <- u psi, u lambda (u = G^dagger).
template <int S>
void undo_lanes(float* __restrict pr, float* __restrict pi, float* __restrict lr, float* __restrict li, int64_t n,
                const Mat2& u, float* overlap) {
  const SplatLanes<S> m(u);
  v16 ax = splat(0), ay = splat(0), az = splat(0);
  for (int64_t k = 0; k < n; k += W) {
    v16 a = load(pr + k), b = load(pi + k), x = load(lr + k), y = load(li + k);
    const v16 sa = swapped<S>(a), sb = swapped<S>(b), sx = swapped<S>(x), sy = swapped<S>(y);
    ax += x * sb;  // lane of bit clear: Im(lambda0* psi1); of bit set: Im(lambda1* psi0)
    ax -= y * sa;
    ay += x * sa;  // Re(lambda0* psi1) | Re(lambda1* psi0), signs - | + below
    ay += y * sb;
    az += x * b;  // Im(lambda0* psi0) | Im(lambda1* psi1), signs + | - below
    az -= y * a;
    rotate_lanes(m, a, b, sa, sb);
    rotate_lanes(m, x, y, sx, sy);
    store(pr + k, a), store(pi + k, b), store(lr + k, x), store(li + k, y);
  }
  overlap[0] = sum_lanes(ax);
  overlap[1] = sum_lanes(ay * by_lane<S>(-1, 1));
  overlap[2] = sum_lanes(az * by_lane<S>(1, -1));
}
void undo(float* __restrict pr, float* __restrict pi, float* __restrict lr, float* __restrict li, int64_t n, int bit,
          const Mat2& u, float* overlap) {
  const int64_t s = int64_t{1} << bit;
  if (s >= W) {
    const Splat m(u);
    v16 ax = splat(0), ay = splat(0), az = splat(0);
    for (int64_t base = 0; base < n; base += 2 * s)
      for (int64_t j = base; j < base + s; j += W) {
        v16 a0 = load(pr + j), b0 = load(pi + j), a1 = load(pr + j + s), b1 = load(pi + j + s);
        v16 x0 = load(lr + j), y0 = load(li + j), x1 = load(lr + j + s), y1 = load(li + j + s);
        ax += x0 * b1;  // Im(lambda0* psi1 + lambda1* psi0)
        ax -= y0 * a1;
        ax += x1 * b0;
        ax -= y1 * a0;
        ay -= x0 * a1;  // Re(lambda1* psi0 - lambda0* psi1)
        ay -= y0 * b1;
        ay += x1 * a0;
        ay += y1 * b0;
        az += x0 * b0;  // Im(lambda0* psi0 - lambda1* psi1)
        az -= y0 * a0;
        az -= x1 * b1;
        az += y1 * a1;
        rotate(m, a0, b0, a1, b1);
        rotate(m, x0, y0, x1, y1);
        store(pr + j, a0), store(pi + j, b0), store(pr + j + s, a1), store(pi + j + s, b1);
        store(lr + j, x0), store(li + j, y0), store(lr + j + s, x1), store(li + j + s, y1);
      }
    overlap[0] = sum_lanes(ax), overlap[1] = sum_lanes(ay), overlap[2] = sum_lanes(az);
    return;
  }
  switch (bit) {
    case 0: return undo_lanes<1>(pr, pi, lr, li, n, u, overlap);
    case 1: return undo_lanes<2>(pr, pi, lr, li, n, u, overlap);
    case 2: return undo_lanes<4>(pr, pi, lr, li, n, u, overlap);
    default:
      if constexpr (W > 8) return undo_lanes<8>(pr, pi, lr, li, n, u, overlap);
  }
}

// psi <- phase psi elementwise (a ring with no rotation before it in its layer: otherwise ``apply`` does it).
void phase(float* __restrict re, float* __restrict im, const float* __restrict phr, const float* __restrict phi,
           int64_t n) {
  for (int64_t k = 0; k < n; k += W) {
    const v16 a = load(re + k), b = load(im + k), c = load(phr + k), s = load(phi + k);
    store(re + k, a * c - b * s), store(im + k, a * s + b * c);
  }
}

// The ring of a layer, undone: psi, lambda <- conj(phase) psi, conj(phase) lambda, and v = Im(conj(lambda) psi)
// (psi, lambda as they come, after the ring) summed against the signs z_i z_{i+1} of NP pairs into out[j] (the
// signs as block[j][block] lane[j][lane]: Circuit); v is also stored where keep_v, for the pairs beyond these NP
// (``ring_dots``).
template <int NP>
void undo_ring(float* __restrict pr, float* __restrict pi, float* __restrict lr, float* __restrict li,
               const float* __restrict phr, const float* __restrict phi, float* __restrict v, bool keep_v,
               int64_t n, const float* const* block, const float* const* lane, double* const* out) {
  v16 acc[NP];
  for (int j = 0; j < NP; ++j) acc[j] = splat(0);
  for (int64_t k = 0; k < n; k += W) {
    const v16 a = load(pr + k), b = load(pi + k), x = load(lr + k), y = load(li + k);
    const v16 c = load(phr + k), s = load(phi + k);
    const v16 im = x * b - y * a;
    if (keep_v) store(v + k, im);
    for (int j = 0; j < NP; ++j) acc[j] += block[j][k / W] * im;
    store(pr + k, a * c + b * s), store(pi + k, b * c - a * s);
    store(lr + k, x * c + y * s), store(li + k, y * c - x * s);
  }
  for (int j = 0; j < NP; ++j) *out[j] += sum_lanes(acc[j] * load(lane[j]));
}

// The same sums for NP more pairs, from v.
template <int NP>
void ring_dots(const float* const* block, const float* const* lane, const float* __restrict v, int64_t n,
               double* const* out) {
  v16 acc[NP];
  for (int j = 0; j < NP; ++j) acc[j] = splat(0);
  for (int64_t k = 0; k < n; k += W) {
    const v16 x = load(v + k);
    for (int j = 0; j < NP; ++j) acc[j] += block[j][k / W] * x;
  }
  for (int j = 0; j < NP; ++j) *out[j] += sum_lanes(acc[j] * load(lane[j]));
}

float readout(const Circuit& c, const float* re, const float* im) {  // <Z_{L-1}>
  v16 acc = splat(0);
  for (int64_t k = 0; k < c.dim; k += W) {
    const v16 r = load(re + k), i = load(im + k);
    acc += (r * r + i * i) * load(c.z_last.data() + k);
  }
  return sum_lanes(acc);
}

// One state, interleaved (re, im, re, im, ...), into two planes, and back; n a multiple of 2W.
template <int... K>
constexpr i16 even_lanes(std::integer_sequence<int, K...>) {
  return i16{(2 * K)...};
}
template <int... K>
constexpr i16 interleaved(std::integer_sequence<int, K...>, int half) {  // (x[h], y[h], x[h + 1], ...) at half h
  return i16{(half * W / 2 + K / 2 + (K % 2) * W)...};
}
void load_state(const std::complex<float>* x, float* __restrict re, float* __restrict im, int64_t n) {
  constexpr i16 even = even_lanes(std::make_integer_sequence<int, W>{}), odd = even + 1;
  const float* f = reinterpret_cast<const float*>(x);
  for (int64_t k = 0; k < n; k += W) {
    const v16 a = load(f + 2 * k), b = load(f + 2 * k + W);
    store(re + k, __builtin_shuffle(a, b, even)), store(im + k, __builtin_shuffle(a, b, odd));
  }
}
void store_state(const float* __restrict re, const float* __restrict im, std::complex<float>* x, int64_t n) {
  constexpr i16 low = interleaved(std::make_integer_sequence<int, W>{}, 0);
  constexpr i16 high = interleaved(std::make_integer_sequence<int, W>{}, 1);
  float* f = reinterpret_cast<float*>(x);
  for (int64_t k = 0; k < n; k += W) {
    const v16 r = load(re + k), i = load(im + k);
    store(f + 2 * k, __builtin_shuffle(r, i, low)), store(f + 2 * k + W, __builtin_shuffle(r, i, high));
  }
}

void forward(const Circuit& c, float* re, float* im) {
  const int64_t n = c.dim;
  for (int64_t l = 0; l < c.depth; ++l) {
    const float *phr = nullptr, *phi = nullptr;
    if (!c.ring[l].empty()) phr = c.ph_r.data() + l * n, phi = c.ph_i.data() + l * n;
    const int64_t first = c.first[l], last = c.first[l + 1];
    for (int64_t k = first; k < last; ++k)
      apply(re, im, n, c.gates[k].bit, c.gates[k].g, k == last - 1 ? phr : nullptr, phi);
    if (phr && first == last) phase(re, im, phr, phi, n);  // a ring with no rotation before it
  }
}

// Adds weight * d logit / d params (before the readout scale) to grad (d, L, 4), in double, from the final
// state (pr, pi); lr, li and v are scratch planes of 2**L floats.
void backward(const Circuit& c, float* pr, float* pi, float* lr, float* li, float* v, float weight, double* grad) {
  const int64_t L = c.n_qubits, n = c.dim;
  for (int64_t k = 0; k < n; k += W) {  // lambda = Z_{L-1} psi (d <Z>/d psi*), times the weight
    const v16 z = weight * load(c.z_last.data() + k);
    store(lr + k, z * load(pr + k)), store(li + k, z * load(pi + k));
  }
  for (int64_t l = c.depth - 1; l >= 0; --l) {
    const std::vector<int>& ring = c.ring[l];
    if (!ring.empty()) {
      // RZZ(e_i) = exp(-i e_i Z_i Z_{i+1} / 2): d/de_i = Im <lambda| Z_i Z_{i+1} |psi>, four pairs a pass, the
      // first four in the pass that undoes the ring
      const float *block[4], *lane[4];
      double* out[4];
      for (size_t j = 0; j < ring.size(); j += 4) {
        const int np = static_cast<int>(std::min<size_t>(4, ring.size() - j));
        for (int m = 0; m < np; ++m) {
          block[m] = c.zz_block.data() + ring[j + m] * (n / W), lane[m] = c.zz_lane.data() + ring[j + m] * W;
          out[m] = grad + 4 * (l * L + ring[j + m]) + 3;
        }
        if (j == 0) {
          const float *phr = c.ph_r.data() + l * n, *phi = c.ph_i.data() + l * n;
          const bool keep_v = ring.size() > 4;
          switch (np) {
            case 4: undo_ring<4>(pr, pi, lr, li, phr, phi, v, keep_v, n, block, lane, out); break;
            case 3: undo_ring<3>(pr, pi, lr, li, phr, phi, v, keep_v, n, block, lane, out); break;
            case 2: undo_ring<2>(pr, pi, lr, li, phr, phi, v, keep_v, n, block, lane, out); break;
            default: undo_ring<1>(pr, pi, lr, li, phr, phi, v, keep_v, n, block, lane, out);
          }
          continue;
        }
        switch (np) {
          case 4: ring_dots<4>(block, lane, v, n, out); break;
          case 3: ring_dots<3>(block, lane, v, n, out); break;
          case 2: ring_dots<2>(block, lane, v, n, out); break;
          default: ring_dots<1>(block, lane, v, n, out);
        }
      }
    }
    for (int64_t k = c.first[l + 1] - 1; k >= c.first[l]; --k) {
      const Gate& g = c.gates[k];
      float o[3];
      undo(pr, pi, lr, li, n, g.bit, g.undo, o);
      double* out = grad + 4 * g.index;
      out[0] += g.da[0] * o[0] + g.da[1] * o[1] + g.da[2] * o[2];
      out[1] += g.db[0] * o[0] + g.db[1] * o[1] + g.db[2] * o[2];
      out[2] += o[0];
    }
  }
}

// -- the FFI handlers ------------------------------------------------------------------------------------------

// The threads of a call take the states kGrain at a time from a shared counter, so that a thread the system
// runs more (on a machine shared with other work) takes more of the batch and no thread waits idle for another
// at the end. The gradient is summed per block of kGrain states, then over the blocks in order: the result does
// not depend on which thread ran which block, nor on the number of threads.
constexpr int64_t kGrain = 4;

// The sizes of a call, from buffers whose ranks and dimensions ``check`` has validated.
struct Sizes {
  int64_t depth, n_qubits, batch;
};

// Validates every buffer's rank and dimensions, reading each dimension only once the rank says it is there,
// and no data at all: params (d, L, 4) with 5 <= L <= 20, states (B, 2**L), masks rot and pair (d, L);
// cotangent (B,) where there is one (the backward pass).
ffi::Error check(ffi::Buffer<ffi::F32> params, ffi::Buffer<ffi::C64> states, ffi::Buffer<ffi::S32> rot,
                 ffi::Buffer<ffi::S32> pair, const ffi::Buffer<ffi::F32>* cotangent, Sizes& sizes) {
  const auto pd = params.dimensions(), sd = states.dimensions(), rd = rot.dimensions(), qd = pair.dimensions();
  if (pd.size() != 3 || pd[2] != 4 || pd[1] < 5 || pd[1] > 20)
    return ffi::Error::InvalidArgument("hea kernel: params must be (d, L, 4) with 5 <= L <= 20, got " + shape(pd));
  const int64_t d = pd[0], L = pd[1];
  if (sd.size() != 2 || sd[1] != (int64_t{1} << L))
    return ffi::Error::InvalidArgument("hea kernel: states must be (B, 2**L) = (B, " +
                                       std::to_string(int64_t{1} << L) + "), got " + shape(sd));
  if (rd.size() != 2 || rd[0] != d || rd[1] != L || qd.size() != 2 || qd[0] != d || qd[1] != L)
    return ffi::Error::InvalidArgument("hea kernel: the masks rot and pair must be (d, L) = (" + std::to_string(d) +
                                       ", " + std::to_string(L) + "), got " + shape(rd) + " and " + shape(qd));
  if (cotangent && (cotangent->dimensions().size() != 1 || cotangent->dimensions()[0] != sd[0]))
    return ffi::Error::InvalidArgument("hea kernel: the cotangent must be (B,) = (" + std::to_string(sd[0]) +
                                       ",), got " + shape(cotangent->dimensions()));
  sizes = {d, L, sd[0]};
  return ffi::Error::Success();
}

// The logits, and each final state into finals where it is not null.
ffi::Error run_forward(ffi::Buffer<ffi::F32> params, ffi::Buffer<ffi::C64> states, ffi::Buffer<ffi::S32> rot,
                       ffi::Buffer<ffi::S32> pair, float scale, int64_t threads, ffi::ResultBuffer<ffi::F32>& logits,
                       ffi::ResultBuffer<ffi::C64>* finals) {
  Sizes z;
  if (auto e = check(params, states, rot, pair, nullptr, z); e.failure()) return e;
  if (logits->dimensions().size() != 1 || logits->dimensions()[0] != z.batch)
    return ffi::Error::InvalidArgument("hea kernel: the logits must be (B,) = (" + std::to_string(z.batch) +
                                       ",), got " + shape(logits->dimensions()));
  if (finals && !same_dims((*finals)->dimensions(), states.dimensions()))
    return ffi::Error::InvalidArgument("hea kernel: the final states must be shaped as the states " +
                                       shape(states.dimensions()) + ", got " + shape((*finals)->dimensions()));
  const Circuit c = build(params.typed_data(), rot.typed_data(), pair.typed_data(), z.n_qubits, z.depth);
  const int64_t batch = z.batch, n = c.dim;
  const std::complex<float>* x = states.typed_data();
  std::complex<float>* kept = finals ? (*finals)->typed_data() : nullptr;
  float* out = logits->typed_data();
  std::atomic<int64_t> next{0};
  parallel(n_threads(batch, n, threads), batch, [&](int64_t, int64_t, int64_t) {
    Floats planes(2 * n);
    float *re = planes.data(), *im = re + n;
    for (int64_t first; (first = next.fetch_add(kGrain)) < batch;)
      for (int64_t b = first; b < std::min(first + kGrain, batch); ++b) {
        load_state(x + b * n, re, im, n);
        forward(c, re, im);
        out[b] = scale * readout(c, re, im);
        if (kept) store_state(re, im, kept + b * n, n);
      }
  });
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::Buffer<ffi::F32> params, ffi::Buffer<ffi::C64> states, ffi::Buffer<ffi::S32> rot,
                   ffi::Buffer<ffi::S32> pair, float scale, int64_t threads, ffi::ResultBuffer<ffi::F32> logits) {
  return guarded("hea kernel", [&] { return run_forward(params, states, rot, pair, scale, threads, logits, nullptr); });
}

// The forward pass of a gradient: the logits and the final states, which ``Backward`` starts from.
ffi::Error ForwardStates(ffi::Buffer<ffi::F32> params, ffi::Buffer<ffi::C64> states, ffi::Buffer<ffi::S32> rot,
                         ffi::Buffer<ffi::S32> pair, float scale, int64_t threads, ffi::ResultBuffer<ffi::F32> logits,
                         ffi::ResultBuffer<ffi::C64> finals) {
  return guarded("hea kernel", [&] { return run_forward(params, states, rot, pair, scale, threads, logits, &finals); });
}

// The gradient of sum_b cotangent[b] * logit_b from the final states (those ``ForwardStates`` returns).
ffi::Error Backward(ffi::Buffer<ffi::F32> params, ffi::Buffer<ffi::C64> finals, ffi::Buffer<ffi::S32> rot,
                    ffi::Buffer<ffi::S32> pair, ffi::Buffer<ffi::F32> cotangent, float scale, int64_t threads,
                    ffi::ResultBuffer<ffi::F32> grad) {
  return guarded("hea kernel", [&] {
    Sizes z;
    if (auto e = check(params, finals, rot, pair, &cotangent, z); e.failure()) return e;
    if (!same_dims(grad->dimensions(), params.dimensions()))
      return ffi::Error::InvalidArgument("hea kernel: the gradient must be shaped as params " +
                                         shape(params.dimensions()) + ", got " + shape(grad->dimensions()));
    const Circuit c = build(params.typed_data(), rot.typed_data(), pair.typed_data(), z.n_qubits, z.depth);
    const int64_t batch = z.batch, n = c.dim, p = z.depth * z.n_qubits * 4;
    const std::complex<float>* x = finals.typed_data();
    const float* g = cotangent.typed_data();
    const int64_t blocks = (batch + kGrain - 1) / kGrain;
    std::vector<double> partial(blocks * p, 0.0);  // per block of states: the sum is the same whatever ran it
    std::atomic<int64_t> next{0};
    parallel(n_threads(batch, n, threads), batch, [&](int64_t, int64_t, int64_t) {
      Floats planes(5 * n);
      float *pr = planes.data(), *pi = pr + n, *lr = pi + n, *li = lr + n, *v = li + n;
      for (int64_t first; (first = next.fetch_add(kGrain)) < batch;) {
        double* acc = partial.data() + first / kGrain * p;
        for (int64_t b = first; b < std::min(first + kGrain, batch); ++b) {
          if (g[b] == 0.0f) continue;
          load_state(x + b * n, pr, pi, n);
          backward(c, pr, pi, lr, li, v, scale * g[b], acc);
        }
      }
    });
    float* out = grad->typed_data();
    for (int64_t k = 0; k < p; ++k) {
      double s = 0;
      for (int64_t block = 0; block < blocks; ++block) s += partial[block * p + k];
      out[k] = static_cast<float>(s);
    }
    return ffi::Error::Success();
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(QrobustHeaForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::C64>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Attr<float>("scale")
                                  .Attr<int64_t>("threads")
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(QrobustHeaForwardStates, ForwardStates,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::C64>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Attr<float>("scale")
                                  .Attr<int64_t>("threads")
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::C64>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(QrobustHeaBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::C64>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("scale")
                                  .Attr<int64_t>("threads")
                                  .Ret<ffi::Buffer<ffi::F32>>());
