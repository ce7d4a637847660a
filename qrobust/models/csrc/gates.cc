// Statevector kernel of any circuit given as a list of operations, forward and adjoint gradient, as XLA FFI
// handlers for JAX on CPU (qrobust.models.native builds and registers it; qrobust.models.circuits makes the
// list from a TensorCircuit circuit).
//
// Operations (ops, (G, 4) int32 rows: kind, index, q1, q2; qubit 0 is the most significant bit), by kind (OpKind):
//   kSingle (0)       a 2x2 matrix mats1[index] on qubit q1 (fused single-qubit gates);
//   kDiagonal (1)     a diagonal diags[index] of 2**L phases on the whole state (fused diagonal gates: RZ, RZZ,
//                     CZ...);
//   kTwoQubit (2)     a 4x4 matrix mats2[index] on qubits (q1, q2), row 2 * bit(q1) + bit(q2) (RXX, ...);
//   kPermutation (3)  a permutation of basis states perms[index] (perms (NP, 2**L) int32): the state after it is
//                     the state before it at these indices (fused constant gates such as a CNOT ring; no
//                     parameters, no gradient).
// The same operations act on every state of the batch. Output per state: logit = scale * <Z_measured>.
//
// The gradient is the adjoint method with respect to the operations' matrices (JAX carries it on to the
// parameters that made them): one forward pass to the final state psi, the costate lambda = w scale Z psi
// (w: the state's output cotangent), then every operation U is undone in reverse order, psi <- U^dagger psi
// (the state before U) and lambda <- U^dagger lambda after adding M = lambda psi^dagger (lambda after U,
// restricted to U's qubits and summed over the rest and over the batch). For a real loss with
// dL = 2 Re sum conj(M) dU, JAX's cotangent of U is 2 conj(M).

#include "statevector.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using c64 = std::complex<float>;

// The kinds of operation, the first entry of a row of ops. Mirrored by qrobust.models.native.OpKind (Python),
// which writes the rows; tests/test_native.py reads this definition and checks that the two agree.
enum OpKind : int32_t { kSingle = 0, kDiagonal = 1, kTwoQubit = 2, kPermutation = 3 };

struct Op {
  OpKind kind;
  int32_t index, q1, q2;
};

struct Program {
  int64_t n_qubits, dim;
  std::vector<Op> ops;
  std::vector<Mat2> u1, u1_dagger;  // (N1,)
  std::vector<float> d_r, d_i;      // (ND, dim)
  std::vector<c64> u2;              // (N2, 16), row-major
  std::vector<int32_t> perm;        // (NP, dim)
  std::vector<float> z;             // (dim,) the measured qubit's Z
};

Mat2 mat2_of(const c64* m) {
  Mat2 out;
  for (int k = 0; k < 4; ++k) out.r[k] = m[k].real(), out.i[k] = m[k].imag();
  return out;
}

Program build(const int32_t* ops, int64_t n_ops, const int32_t* perms, int64_t np, const c64* mats1, int64_t n1,
              const c64* diags, int64_t nd, const c64* mats2, int64_t n2, int64_t L, int64_t measured) {
  Program p;
  p.n_qubits = L;
  p.dim = int64_t{1} << L;
  for (int64_t g = 0; g < n_ops; ++g)  // the kinds are checked (``check``)
    p.ops.push_back({static_cast<OpKind>(ops[4 * g]), ops[4 * g + 1], ops[4 * g + 2], ops[4 * g + 3]});
  for (int64_t k = 0; k < n1; ++k) {
    p.u1.push_back(mat2_of(mats1 + 4 * k));
    p.u1_dagger.push_back(dagger(p.u1.back()));
  }
  p.d_r.resize(nd * p.dim);
  p.d_i.resize(nd * p.dim);
  for (int64_t k = 0; k < nd * p.dim; ++k) p.d_r[k] = diags[k].real(), p.d_i[k] = diags[k].imag();
  p.u2.assign(mats2, mats2 + 16 * n2);
  p.perm.assign(perms, perms + np * p.dim);
  p.z.resize(p.dim);
  for (int64_t s = 0; s < p.dim; ++s) p.z[s] = static_cast<float>(1 - 2 * ((s >> (L - 1 - measured)) & 1));
  return p;
}

int64_t stride(const Program& p, int32_t q) { return int64_t{1} << (p.n_qubits - 1 - q); }

// The four amplitudes of every quad (bits q1, q2 of the index running over 00, 01, 10, 11) that a two-qubit
// operation mixes: f(index[4]) for each quad.
template <typename F>
void quads(const Program& p, int32_t q1, int32_t q2, F&& f) {
  const int64_t s1 = stride(p, q1), s2 = stride(p, q2), lo = std::min(s1, s2), hi = std::max(s1, s2);
  for (int64_t j = 0; j < p.dim / 4; ++j) {  // j with a zero bit inserted at lo's place, then at hi's
    int64_t k = ((j & ~(lo - 1)) << 1) | (j & (lo - 1));
    k = ((k & ~(hi - 1)) << 1) | (k & (hi - 1));
    const int64_t index[4] = {k, k | s2, k | s1, k | s1 | s2};
    f(index);
  }
}

// (re, im)[quad] <- u (re, im)[quad], or u^dagger with dagger.
void apply4(const Program& p, const Op& op, float* re, float* im, bool dagger) {
  const c64* u = p.u2.data() + 16 * op.index;
  quads(p, op.q1, op.q2, [&](const int64_t* index) {
    c64 x[4], y[4];
    for (int a = 0; a < 4; ++a) x[a] = {re[index[a]], im[index[a]]};
    for (int a = 0; a < 4; ++a) {
      y[a] = 0;
      for (int b = 0; b < 4; ++b) y[a] += (dagger ? std::conj(u[4 * b + a]) : u[4 * a + b]) * x[b];
    }
    for (int a = 0; a < 4; ++a) re[index[a]] = y[a].real(), im[index[a]] = y[a].imag();
  });
}

// planes[k] <- planes[k][gather] (forward) or planes[k][gather] <- planes[k] (undo), through a scratch copy.
void permute(const Program& p, const Op& op, float* const* planes, int count, bool undo) {
  thread_local std::vector<float> scratch;
  const int32_t* gather = p.perm.data() + op.index * p.dim;
  scratch.resize(p.dim);
  for (int k = 0; k < count; ++k) {
    float* x = planes[k];
    std::copy(x, x + p.dim, scratch.begin());
    if (undo) {
      for (int64_t j = 0; j < p.dim; ++j) x[gather[j]] = scratch[j];
    } else {
      for (int64_t j = 0; j < p.dim; ++j) x[j] = scratch[gather[j]];
    }
  }
}

void forward(const Program& p, float* re, float* im) {
  const int64_t n = p.dim;
  for (const Op& op : p.ops) {
    switch (op.kind) {
      case kSingle:
        apply2(re, im, n, stride(p, op.q1), p.u1[op.index]);
        break;
      case kDiagonal:
        multiply_phase(re, im, p.d_r.data() + op.index * n, p.d_i.data() + op.index * n, n, false);
        break;
      case kTwoQubit:
        apply4(p, op, re, im, false);
        break;
      case kPermutation: {
        float* planes[2] = {re, im};
        permute(p, op, planes, 2, false);
        break;
      }
    }
  }
}

float readout(const Program& p, const float* re, const float* im) {  // <Z_measured>
  v16 acc = splat(0);
  for (int64_t k = 0; k < p.dim; k += W) {
    const v16 r = load(re + k), i = load(im + k);
    acc += (r * r + i * i) * load(p.z.data() + k);
  }
  return sum_lanes(acc);
}

// Per-thread sums of M = lambda psi^dagger: (N1, 2, 2), (ND, dim) and (N2, 4, 4), real and imaginary parts.
struct Sums {
  std::vector<double> m1;  // (N1, 4, 2)
  std::vector<float> md;   // (ND, dim, 2): one entry per amplitude, summed over the thread's states
  std::vector<double> m2;  // (N2, 16, 2)
  Sums(int64_t n1, int64_t nd, int64_t dim, int64_t n2) : m1(8 * n1), md(2 * nd * dim), m2(32 * n2) {}
};

// Undo a 2x2 operation on psi and lambda, adding its M.
void undo2(const Program& p, const Op& op, float* pr, float* pi, float* lr, float* li, double* m) {
  float* planes[4] = {pr, pi, lr, li};
  const Mat2& ud = p.u1_dagger[op.index];
  v16 acc[8];
  for (auto& a : acc) a = splat(0);
  pairs<4>(planes, p.dim, stride(p, op.q1), [&](v16* x0, v16* x1) {
    rotate(ud, x0, x1, 0);  // psi before the operation
    const v16* psi[2] = {x0, x1};
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {  // lambda_a conj(psi_b)
        const v16 *l = psi[a] + 2, *s = psi[b];
        acc[2 * (2 * a + b)] += l[0] * s[0] + l[1] * s[1];
        acc[2 * (2 * a + b) + 1] += l[1] * s[0] - l[0] * s[1];
      }
    rotate(ud, x0, x1, 2);
  });
  for (int k = 0; k < 8; ++k) m[k] += sum_lanes(acc[k]);
}

// Undo a diagonal on psi and lambda, adding M's diagonal per amplitude.
void undo_diagonal(const Program& p, const Op& op, float* pr, float* pi, float* lr, float* li, float* m) {
  const float* dr = p.d_r.data() + op.index * p.dim;
  const float* di = p.d_i.data() + op.index * p.dim;
  for (int64_t k = 0; k < p.dim; ++k) {
    const float a = pr[k] * dr[k] + pi[k] * di[k], b = pi[k] * dr[k] - pr[k] * di[k];  // conj(d) psi
    m[2 * k] += lr[k] * a + li[k] * b;
    m[2 * k + 1] += li[k] * a - lr[k] * b;
    const float c = lr[k] * dr[k] + li[k] * di[k], e = li[k] * dr[k] - lr[k] * di[k];
    pr[k] = a, pi[k] = b, lr[k] = c, li[k] = e;
  }
}

// Undo a 4x4 operation on psi and lambda, adding its M.
void undo4(const Program& p, const Op& op, float* pr, float* pi, float* lr, float* li, double* m) {
  const c64* u = p.u2.data() + 16 * op.index;
  c64 acc[16] = {};
  quads(p, op.q1, op.q2, [&](const int64_t* index) {
    c64 x[4], l[4], y[4], z[4];
    for (int a = 0; a < 4; ++a) x[a] = {pr[index[a]], pi[index[a]]}, l[a] = {lr[index[a]], li[index[a]]};
    for (int a = 0; a < 4; ++a) {
      y[a] = z[a] = 0;
      for (int b = 0; b < 4; ++b) y[a] += std::conj(u[4 * b + a]) * x[b], z[a] += std::conj(u[4 * b + a]) * l[b];
    }
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) acc[4 * a + b] += l[a] * std::conj(y[b]);
    for (int a = 0; a < 4; ++a)
      pr[index[a]] = y[a].real(), pi[index[a]] = y[a].imag(), lr[index[a]] = z[a].real(), li[index[a]] = z[a].imag();
  });
  for (int k = 0; k < 16; ++k) m[2 * k] += acc[k].real(), m[2 * k + 1] += acc[k].imag();
}

// Adds weight * M of every operation (before the readout scale) to sums.
void backward(const Program& p, float* pr, float* pi, float* lr, float* li, float weight, Sums& sums) {
  const int64_t n = p.dim;
  forward(p, pr, pi);
  for (int64_t k = 0; k < n; ++k) lr[k] = weight * p.z[k] * pr[k], li[k] = weight * p.z[k] * pi[k];
  for (auto op = p.ops.rbegin(); op != p.ops.rend(); ++op) {
    switch (op->kind) {
      case kSingle:
        undo2(p, *op, pr, pi, lr, li, sums.m1.data() + 8 * op->index);
        break;
      case kDiagonal:
        undo_diagonal(p, *op, pr, pi, lr, li, sums.md.data() + 2 * op->index * n);
        break;
      case kTwoQubit:
        undo4(p, *op, pr, pi, lr, li, sums.m2.data() + 32 * op->index);
        break;
      case kPermutation: {
        float* planes[4] = {pr, pi, lr, li};
        permute(p, *op, planes, 4, true);
        break;
      }
    }
  }
}

using C64s = ffi::Buffer<ffi::C64>;

using S32s = ffi::Buffer<ffi::S32>;

// The sizes of a call, from buffers whose ranks and dimensions ``check`` has validated.
struct Sizes {
  int64_t n_qubits, batch;
};

// L of states of n = 2**L amplitudes, 5 <= L <= 20; 0 where n is no such length.
int64_t state_qubits(int64_t n) {
  if (n < (int64_t{1} << 5) || n > (int64_t{1} << 20) || (n & (n - 1)) != 0) return 0;
  return __builtin_ctzll(n);
}

// Validates the buffers in three steps, each reading only what the one before has vouched for: the ranks; then
// the dimensions: ops (G, 4), perms (NP, 2**L), mats1 (N1, 2, 2), diags (ND, 2**L), mats2 (N2, 4, 4), states
// (B, 2**L) with 5 <= L <= 20, a measured qubit below L, and cotangent (B,) where there is one (the backward
// pass); then the data of ops and perms: known kinds, indices and qubits in range, permutations' entries in
// [0, 2**L).
ffi::Error check(S32s ops, S32s perms, C64s mats1, C64s diags, C64s mats2, C64s states, int64_t measured,
                 const ffi::Buffer<ffi::F32>* cotangent, Sizes& sizes) {
  const auto od = ops.dimensions(), pd = perms.dimensions(), m1 = mats1.dimensions(), dd = diags.dimensions(),
             m2 = mats2.dimensions(), sd = states.dimensions();
  if (od.size() != 2 || pd.size() != 2 || m1.size() != 3 || dd.size() != 2 || m2.size() != 3 || sd.size() != 2 ||
      (cotangent && cotangent->dimensions().size() != 1))
    return ffi::Error::InvalidArgument(
        "gates kernel: ops, perms, mats1, diags, mats2, states" + std::string(cotangent ? ", cotangent" : "") +
        " must have ranks 2, 2, 3, 2, 3, 2" + (cotangent ? ", 1" : "") + ", got shapes " + shape(od) + ", " +
        shape(pd) + ", " + shape(m1) + ", " + shape(dd) + ", " + shape(m2) + ", " + shape(sd) +
        (cotangent ? ", " + shape(cotangent->dimensions()) : ""));
  const int64_t L = state_qubits(sd[1]), n = sd[1], batch = sd[0];
  if (L == 0)
    return ffi::Error::InvalidArgument("gates kernel: states must be (B, 2**L) with 5 <= L <= 20, got " + shape(sd));
  if (od[1] != 4 || pd[1] != n || m1[1] != 2 || m1[2] != 2 || dd[1] != n || m2[1] != 4 || m2[2] != 4)
    return ffi::Error::InvalidArgument("gates kernel: ops must be (G, 4), perms (NP, " + std::to_string(n) +
                                       "), mats1 (N1, 2, 2), diags (ND, " + std::to_string(n) +
                                       "), mats2 (N2, 4, 4), got " + shape(od) + ", " + shape(pd) + ", " + shape(m1) +
                                       ", " + shape(dd) + ", " + shape(m2));
  if (cotangent && cotangent->dimensions()[0] != batch)
    return ffi::Error::InvalidArgument("gates kernel: the cotangent must be (B,) = (" + std::to_string(batch) +
                                       ",), got " + shape(cotangent->dimensions()));
  if (measured < 0 || measured >= L)
    return ffi::Error::InvalidArgument("gates kernel: the measured qubit must be in [0, " + std::to_string(L) +
                                       "), got " + std::to_string(measured));
  const int32_t* g = perms.typed_data();
  for (int64_t k = 0; k < pd[0] * n; ++k)
    if (g[k] < 0 || g[k] >= n)
      return ffi::Error::InvalidArgument("gates kernel: permutation " + std::to_string(k / n) + " has index " +
                                         std::to_string(g[k]) + ", out of range [0, " + std::to_string(n) + ")");
  const int32_t* o = ops.typed_data();
  for (int64_t r = 0; r < od[0]; ++r) {
    const int32_t kind = o[4 * r], index = o[4 * r + 1], q1 = o[4 * r + 2], q2 = o[4 * r + 3];
    int64_t count = 0;  // entries of the array the operation's index points into
    switch (kind) {
      case kSingle: count = m1[0]; break;
      case kDiagonal: count = dd[0]; break;
      case kTwoQubit: count = m2[0]; break;
      case kPermutation: count = pd[0]; break;
      default:
        return ffi::Error::InvalidArgument("gates kernel: operation " + std::to_string(r) + " has kind " +
                                           std::to_string(kind) + ", not one of 0 to 3 (OpKind)");
    }
    if (index < 0 || index >= count || q1 < 0 || q1 >= L || (kind == kTwoQubit && (q2 < 0 || q2 >= L || q2 == q1)))
      return ffi::Error::InvalidArgument("gates kernel: operation " + std::to_string(r) + " (kind " +
                                         std::to_string(kind) + ", index " + std::to_string(index) + ", qubits " +
                                         std::to_string(q1) + ", " + std::to_string(q2) +
                                         ") has its index or qubits out of range");
  }
  sizes = {L, batch};
  return ffi::Error::Success();
}

Program program_of(S32s ops, S32s perms, C64s mats1, C64s diags, C64s mats2, const Sizes& z, int64_t measured) {
  return build(ops.typed_data(), ops.dimensions()[0], perms.typed_data(), perms.dimensions()[0],
               mats1.typed_data(), mats1.dimensions()[0],
               diags.typed_data(), diags.dimensions()[0], mats2.typed_data(), mats2.dimensions()[0], z.n_qubits,
               measured);
}

ffi::Error Forward(S32s ops, S32s perms, C64s mats1, C64s diags, C64s mats2, C64s states, float scale,
                   int64_t measured, int64_t threads, ffi::ResultBuffer<ffi::F32> logits) {
  return guarded("gates kernel", [&] {
    Sizes z;
    if (auto e = check(ops, perms, mats1, diags, mats2, states, measured, nullptr, z); e.failure()) return e;
    if (logits->dimensions().size() != 1 || logits->dimensions()[0] != z.batch)
      return ffi::Error::InvalidArgument("gates kernel: the logits must be (B,) = (" + std::to_string(z.batch) +
                                         ",), got " + shape(logits->dimensions()));
    const Program p = program_of(ops, perms, mats1, diags, mats2, z, measured);
    const int64_t batch = z.batch, n = p.dim;
    const c64* x = states.typed_data();
    float* out = logits->typed_data();
    parallel(n_threads(batch, n, threads), batch, [&](int64_t, int64_t first, int64_t last) {
      std::vector<float> re(n), im(n);
      for (int64_t b = first; b < last; ++b) {
        load(x + b * n, re.data(), im.data(), n);
        forward(p, re.data(), im.data());
        out[b] = scale * readout(p, re.data(), im.data());
      }
    });
    return ffi::Error::Success();
  });
}

ffi::Error Backward(S32s ops, S32s perms, C64s mats1, C64s diags, C64s mats2, C64s states,
                    ffi::Buffer<ffi::F32> cotangent, float scale, int64_t measured, int64_t threads,
                    ffi::ResultBuffer<ffi::C64> ct1, ffi::ResultBuffer<ffi::C64> ctd, ffi::ResultBuffer<ffi::C64> ct2) {
  return guarded("gates kernel", [&] {
    Sizes z;
    if (auto e = check(ops, perms, mats1, diags, mats2, states, measured, &cotangent, z); e.failure()) return e;
    if (!same_dims(ct1->dimensions(), mats1.dimensions()) || !same_dims(ctd->dimensions(), diags.dimensions()) ||
        !same_dims(ct2->dimensions(), mats2.dimensions()))
      return ffi::Error::InvalidArgument("gates kernel: the cotangents must be shaped as mats1, diags, mats2 " +
                                         shape(mats1.dimensions()) + ", " + shape(diags.dimensions()) + ", " +
                                         shape(mats2.dimensions()) + ", got " + shape(ct1->dimensions()) + ", " +
                                         shape(ctd->dimensions()) + ", " + shape(ct2->dimensions()));
    const Program p = program_of(ops, perms, mats1, diags, mats2, z, measured);
    const int64_t batch = z.batch, n = p.dim;
    const int64_t n1 = mats1.dimensions()[0], nd = diags.dimensions()[0], n2 = mats2.dimensions()[0];
    const c64* x = states.typed_data();
    const float* g = cotangent.typed_data();
    const int64_t t = n_threads(batch, n, threads);
    std::vector<Sums> sums(t, Sums(n1, nd, n, n2));
    parallel(t, batch, [&](int64_t thread, int64_t first, int64_t last) {
      std::vector<float> pr(n), pi(n), lr(n), li(n);
      for (int64_t b = first; b < last; ++b) {
        if (g[b] == 0.0f) continue;
        load(x + b * n, pr.data(), pi.data(), n);
        backward(p, pr.data(), pi.data(), lr.data(), li.data(), scale * g[b], sums[thread]);
      }
    });
    // JAX's cotangent of each matrix: 2 conj(M), M summed over the threads in double
    auto write = [&](c64* out, int64_t count, auto part) {
      for (int64_t k = 0; k < count; ++k) {
        double re = 0, im = 0;
        for (int64_t th = 0; th < t; ++th) re += part(sums[th], 2 * k), im += part(sums[th], 2 * k + 1);
        out[k] = {static_cast<float>(2 * re), static_cast<float>(-2 * im)};
      }
    };
    write(ct1->typed_data(), 4 * n1, [](const Sums& s, int64_t k) { return s.m1[k]; });
    write(ctd->typed_data(), nd * n, [](const Sums& s, int64_t k) { return static_cast<double>(s.md[k]); });
    write(ct2->typed_data(), 16 * n2, [](const Sums& s, int64_t k) { return s.m2[k]; });
    return ffi::Error::Success();
  });
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(QrobustGatesForward, Forward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<C64s>()
                                  .Arg<C64s>()
                                  .Arg<C64s>()
                                  .Arg<C64s>()
                                  .Attr<float>("scale")
                                  .Attr<int64_t>("measured")
                                  .Attr<int64_t>("threads")
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(QrobustGatesBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<C64s>()
                                  .Arg<C64s>()
                                  .Arg<C64s>()
                                  .Arg<C64s>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<float>("scale")
                                  .Attr<int64_t>("measured")
                                  .Attr<int64_t>("threads")
                                  .Ret<C64s>()
                                  .Ret<C64s>()
                                  .Ret<C64s>());
