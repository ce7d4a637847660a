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
// the states of a batch are shared among threads. The gradient is the adjoint method: one forward pass
// to the final state psi, the costate lambda = d logit / d psi* = scale * Z_{L-1} psi, then every
// operation is undone on psi and lambda in reverse order, and a gate exp(-i t P / 2) contributes
// d logit / dt = Im <lambda|P|psi> (psi, lambda just after the gate). Nothing but two states per thread
// is stored.

#include "statevector.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

Mat2 rx(float t) {
  float c = std::cos(t / 2), s = std::sin(t / 2);
  return {{c, 0, 0, c}, {0, -s, -s, 0}};
}
Mat2 ry(float t) {
  float c = std::cos(t / 2), s = std::sin(t / 2);
  return {{c, -s, s, c}, {0, 0, 0, 0}};
}
Mat2 mul(const Mat2& x, const Mat2& y) {  // x @ y
  Mat2 z;
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) {
      float re = 0, im = 0;
      for (int k = 0; k < 2; ++k) {
        re += x.r[2 * a + k] * y.r[2 * k + b] - x.i[2 * a + k] * y.i[2 * k + b];
        im += x.r[2 * a + k] * y.i[2 * k + b] + x.i[2 * a + k] * y.r[2 * k + b];
      }
      z.r[2 * a + b] = re;
      z.i[2 * a + b] = im;
    }
  return z;
}
// Im <lambda| P |psi> over the pairs, per lane; P = X or Y. Planes: psi re, im (0, 1), lambda re, im (2, 3).
inline v16 im_x(const v16* x0, const v16* x1) {  // X psi = (psi1, psi0)
  return x0[2] * x1[1] - x0[3] * x1[0] + x1[2] * x0[1] - x1[3] * x0[0];
}
inline v16 im_y(const v16* x0, const v16* x1) {  // Y psi = (-i psi1, i psi0)
  return -x0[2] * x1[0] - x0[3] * x1[1] + x1[2] * x0[0] + x1[3] * x0[1];
}

// One backward pass over the pairs of qubit q for G = RX(c) RY(b) RX(a): adds d/dc, d/db, d/da and undoes
// the three rotations on psi and lambda.
void undo_rotations(float* pr, float* pi, float* lr, float* li, int64_t n, int64_t s, const Mat2& uc,
                    const Mat2& ub, const Mat2& ua, double* grad_abc) {
  float* planes[4] = {pr, pi, lr, li};
  v16 gc = splat(0), gb = splat(0), ga = splat(0);
  pairs<4>(planes, n, s, [&](v16* x0, v16* x1) {
    gc += im_x(x0, x1);
    rotate(uc, x0, x1, 0), rotate(uc, x0, x1, 2);
    gb += im_y(x0, x1);
    rotate(ub, x0, x1, 0), rotate(ub, x0, x1, 2);
    ga += im_x(x0, x1);
    rotate(ua, x0, x1, 0), rotate(ua, x0, x1, 2);
  });
  grad_abc[0] += sum_lanes(ga), grad_abc[1] += sum_lanes(gb), grad_abc[2] += sum_lanes(gc);
}

struct Circuit {
  int64_t n_qubits, depth, dim;
  std::vector<Mat2> gates, rx_a, ry_b, rx_c;  // (d, L)
  std::vector<uint8_t> rot, pair;            // (d, L)
  std::vector<float> ph_r, ph_i;             // (d, dim) ring phases (identity where no pair is on)
  std::vector<float> zz;                     // (L, dim) z_i z_{i+1}
  std::vector<float> z_last;                 // (dim,)
  bool has_ring(int64_t l) const {
    for (int64_t q = 0; q < n_qubits; ++q)
      if (pair[l * n_qubits + q]) return true;
    return false;
  }
};

Circuit build(const float* params, const int32_t* rot, const int32_t* pair, int64_t L, int64_t d) {
  Circuit c;
  c.n_qubits = L;
  c.depth = d;
  c.dim = int64_t{1} << L;
  c.gates.resize(d * L);
  c.rx_a.resize(d * L);
  c.ry_b.resize(d * L);
  c.rx_c.resize(d * L);
  c.rot.assign(rot, rot + d * L);
  c.pair.assign(pair, pair + d * L);
  for (int64_t k = 0; k < d * L; ++k) {
    const float* p = params + 4 * k;
    c.rx_a[k] = rx(p[0]);
    c.ry_b[k] = ry(p[1]);
    c.rx_c[k] = rx(p[2]);
    c.gates[k] = mul(c.rx_c[k], mul(c.ry_b[k], c.rx_a[k]));
  }
  c.zz.resize(L * c.dim);
  c.z_last.resize(c.dim);
  for (int64_t s = 0; s < c.dim; ++s) {
    for (int64_t i = 0; i < L; ++i) {
      const int64_t j = (i + 1) % L;
      const int zi = 1 - 2 * ((s >> (L - 1 - i)) & 1), zj = 1 - 2 * ((s >> (L - 1 - j)) & 1);
      c.zz[i * c.dim + s] = static_cast<float>(zi * zj);
    }
    c.z_last[s] = static_cast<float>(1 - 2 * (s & 1));
  }
  c.ph_r.resize(d * c.dim);
  c.ph_i.resize(d * c.dim);
  for (int64_t l = 0; l < d; ++l)
    for (int64_t s = 0; s < c.dim; ++s) {
      float angle = 0;
      for (int64_t i = 0; i < L; ++i)
        if (c.pair[l * L + i]) angle += params[4 * (l * L + i) + 3] * c.zz[i * c.dim + s];
      c.ph_r[l * c.dim + s] = std::cos(-0.5f * angle);
      c.ph_i[l * c.dim + s] = std::sin(-0.5f * angle);
    }
  return c;
}

void forward(const Circuit& c, float* re, float* im) {
  const int64_t L = c.n_qubits, n = c.dim;
  for (int64_t l = 0; l < c.depth; ++l) {
    for (int64_t q = 0; q < L; ++q)
      if (c.rot[l * L + q]) apply2(re, im, n, int64_t{1} << (L - 1 - q), c.gates[l * L + q]);
    if (c.has_ring(l)) multiply_phase(re, im, c.ph_r.data() + l * n, c.ph_i.data() + l * n, n, false);
  }
}

// sum_k a[k] b[k] over n (a multiple of W) entries, in W lanes.
float dot(const float* a, const float* b, int64_t n) {
  v16 acc = splat(0);
  for (int64_t k = 0; k < n; k += W) acc += load(a + k) * load(b + k);
  return sum_lanes(acc);
}

float readout(const Circuit& c, const float* re, const float* im) {  // <Z_{L-1}>
  v16 acc = splat(0);
  for (int64_t k = 0; k < c.dim; k += W) {
    const v16 r = load(re + k), i = load(im + k);
    acc += (r * r + i * i) * load(c.z_last.data() + k);
  }
  return sum_lanes(acc);
}

// Adds weight * d logit / d params (before the readout scale) to grad (d, L, 4), in double.
void backward(const Circuit& c, float* pr, float* pi, float* lr, float* li, float weight, double* grad) {
  const int64_t L = c.n_qubits, n = c.dim;
  forward(c, pr, pi);
  for (int64_t k = 0; k < n; ++k) {  // lambda = Z_{L-1} psi (d <Z>/d psi*), times the weight
    lr[k] = weight * c.z_last[k] * pr[k];
    li[k] = weight * c.z_last[k] * pi[k];
  }
  std::vector<float> v(n);
  for (int64_t l = c.depth - 1; l >= 0; --l) {
    if (c.has_ring(l)) {
      const float* phr = c.ph_r.data() + l * n;
      const float* phi = c.ph_i.data() + l * n;
      for (int64_t k = 0; k < n; ++k) v[k] = lr[k] * pi[k] - li[k] * pr[k];  // Im(conj(lambda) psi)
      for (int64_t i = 0; i < L; ++i) {
        if (!c.pair[l * L + i]) continue;
        // RZZ(e_i) = exp(-i e_i Z_i Z_{i+1} / 2): d/de_i = Im <lambda| Z_i Z_{i+1} |psi>
        const float* zz = c.zz.data() + i * n;
        grad[4 * (l * L + i) + 3] += dot(zz, v.data(), n);
      }
      multiply_phase(pr, pi, phr, phi, n, true);  // undo the ring on psi and lambda
      multiply_phase(lr, li, phr, phi, n, true);
    }
    for (int64_t q = L - 1; q >= 0; --q) {
      if (!c.rot[l * L + q]) continue;
      const int64_t s = int64_t{1} << (L - 1 - q);
      const int64_t k = l * L + q;
      undo_rotations(pr, pi, lr, li, n, s, dagger(c.rx_c[k]), dagger(c.ry_b[k]), dagger(c.rx_a[k]),
                     grad + 4 * k);
    }
  }
}

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

ffi::Error Forward(ffi::Buffer<ffi::F32> params, ffi::Buffer<ffi::C64> states, ffi::Buffer<ffi::S32> rot,
                   ffi::Buffer<ffi::S32> pair, float scale, int64_t threads, ffi::ResultBuffer<ffi::F32> logits) {
  return guarded("hea kernel", [&] {
    Sizes z;
    if (auto e = check(params, states, rot, pair, nullptr, z); e.failure()) return e;
    if (logits->dimensions().size() != 1 || logits->dimensions()[0] != z.batch)
      return ffi::Error::InvalidArgument("hea kernel: the logits must be (B,) = (" + std::to_string(z.batch) +
                                         ",), got " + shape(logits->dimensions()));
    const Circuit c = build(params.typed_data(), rot.typed_data(), pair.typed_data(), z.n_qubits, z.depth);
    const int64_t batch = z.batch, n = c.dim;
    const std::complex<float>* x = states.typed_data();
    float* out = logits->typed_data();
    parallel(n_threads(batch, n, threads), batch, [&](int64_t, int64_t first, int64_t last) {
      std::vector<float> re(n), im(n);
      for (int64_t b = first; b < last; ++b) {
        load(x + b * n, re.data(), im.data(), n);
        forward(c, re.data(), im.data());
        out[b] = scale * readout(c, re.data(), im.data());
      }
    });
    return ffi::Error::Success();
  });
}

ffi::Error Backward(ffi::Buffer<ffi::F32> params, ffi::Buffer<ffi::C64> states, ffi::Buffer<ffi::S32> rot,
                    ffi::Buffer<ffi::S32> pair, ffi::Buffer<ffi::F32> cotangent, float scale, int64_t threads,
                    ffi::ResultBuffer<ffi::F32> grad) {
  return guarded("hea kernel", [&] {
    Sizes z;
    if (auto e = check(params, states, rot, pair, &cotangent, z); e.failure()) return e;
    if (!same_dims(grad->dimensions(), params.dimensions()))
      return ffi::Error::InvalidArgument("hea kernel: the gradient must be shaped as params " +
                                         shape(params.dimensions()) + ", got " + shape(grad->dimensions()));
    const Circuit c = build(params.typed_data(), rot.typed_data(), pair.typed_data(), z.n_qubits, z.depth);
    const int64_t batch = z.batch, n = c.dim, p = z.depth * z.n_qubits * 4;
    const std::complex<float>* x = states.typed_data();
    const float* g = cotangent.typed_data();
    const int64_t t = n_threads(batch, n, threads);
    std::vector<double> partial(t * p, 0.0);
    parallel(t, batch, [&](int64_t thread, int64_t first, int64_t last) {
      std::vector<float> pr(n), pi(n), lr(n), li(n);
      double* acc = partial.data() + thread * p;
      for (int64_t b = first; b < last; ++b) {
        if (g[b] == 0.0f) continue;
        load(x + b * n, pr.data(), pi.data(), n);
        backward(c, pr.data(), pi.data(), lr.data(), li.data(), scale * g[b], acc);
      }
    });
    float* out = grad->typed_data();
    for (int64_t k = 0; k < p; ++k) {
      double s = 0;
      for (int64_t th = 0; th < t; ++th) s += partial[th * p + k];
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
