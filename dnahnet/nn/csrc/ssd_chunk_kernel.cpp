// The SSD scan on CPU, forward and backward, one chunk of one group at a time; and, further down, the rest of the
// Mamba-2 layer's work between its projections: the skip term with the gated norm (gated_norm) and the causal conv
// with its SiLU (conv_silu); the blocks' RMSNorm (rms_norm); attention's rotary embedding (rotary_qkv); the MLP's
// gate (swiglu); and the routing module's cosine similarity of adjacent positions (adjacent_cosine).
//
// Three scan operators, each with its backward:
// - chunk_states: the state each chunk leaves behind from zero, sum_s exp(A_end - A_s) dt_s B_s x_s^T, held (n x p);
// - chunk_output: what dnahnet.nn.ssd._ChunkOutput computes with x scaled by dt,
//   y = ((C B^T) * decay) (dt x) + exp(A) * (C carried), per chunk and head;
// - scan: both, with the states passed from chunk to chunk between them, in one call (what the layer uses): its
//   backward adds the outputs' and the states' gradients into one dx, dB and dC.
// All take the layer's step sizes dt apart from x and scale by them inside (a column scale of the decay), so
// the layer makes no dt * x tensor and no pass for its gradients; each backward also returns dt's gradient.
// All read x, B and C where they lie, and write y and the gradients, in the scan's own position-major layout, so no
// chunk-major copy is made; and all keep a chunk's blocks in cache: the PyTorch form writes each (q x q)
// block (decay, scores, their gradients) for all chunks to memory and reads it back, pass after pass. The
// backwards recompute the blocks instead of saving them. Every product is rows of fused multiply-adds
// over short contiguous rows, several output rows at once so the accumulators stay in registers.
// Built on first use by dnahnet.nn.cpu_kernel (torch.utils.cpp_extension).
//
// Shapes (float32; x, B and C with their last two dimensions packed, any batch and position strides; the rest
// contiguous): x (b, l, h, p), dt (b, l, h) and B, C (b, l, g, n) with l = c q, a multiple of the chunk q;
// A (b, c, g, r, q), the within-chunk cumulative log-decay of each group's r = h / g heads; carried and
// states (b, c, g, r, n, p). q, p and n are each 16, 32, 64, 128 or 256.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/functional_bfloat16.h>
#include <limits>
#include <vector>

using Vec = at::vec::Vectorized<float>;
constexpr int64_t W = Vec::size();

// out[r][0:V*W] (+)= sum_{k<K} a[r*lda + k*ldk] * M[k*ld : k*ld+V*W] for R rows at once: each row of M
// is loaded once for R outputs, and R*V independent accumulators hide the FMA latency. The coefficients are
// read one at a time, so a may be read along either axis (ldk = 1: a's rows; lda = 1: its columns, a transpose
// that is never written).
template <int64_t V, int64_t R>
static inline void combo(float* __restrict out, int64_t ldo, const float* __restrict a, int64_t lda,
                         const float* __restrict M, int64_t K, int64_t ld, bool accumulate, int64_t ldk) {
  Vec acc[R][V];
#pragma GCC unroll 16
  for (int64_t r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int64_t v = 0; v < V; ++v) acc[r][v] = accumulate ? Vec::loadu(out + r * ldo + v * W) : Vec(0.f);
  for (int64_t k = 0; k < K; ++k) {
    const float* row = M + k * ld;
    Vec m[V];
#pragma GCC unroll 16
    for (int64_t v = 0; v < V; ++v) m[v] = Vec::loadu(row + v * W);
#pragma GCC unroll 16
    for (int64_t r = 0; r < R; ++r) {
      const Vec s(a[r * lda + k * ldk]);
#pragma GCC unroll 16
      for (int64_t v = 0; v < V; ++v) acc[r][v] = at::vec::fmadd(s, m[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int64_t r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int64_t v = 0; v < V; ++v) acc[r][v].store(out + r * ldo + v * W);
}

// Rows per call by row length: as many as keep 16 accumulators in registers (8 rows of 2 vectors for the presets'
// head and state size of 32, where 4 rows kept only 8).
static inline int64_t rows_per_block(int64_t L) { return L <= 2 * W ? 8 : L <= 4 * W ? 4 : (L <= 8 * W ? 2 : 1); }

// `combo` for R rows of v vectors, v chosen at run time (1..VMAX).
template <int64_t R, int64_t VMAX, int64_t V = 1>
static inline void combo_v(int64_t v, float* out, int64_t ldo, const float* a, int64_t lda, const float* M,
                           int64_t K, int64_t ld, bool accumulate, int64_t ldk) {
  if constexpr (V > VMAX) {
    TORCH_CHECK(false, "ssd chunk kernel: unsupported row length ", v * W);
  } else {
    if (v == V) return combo<V, R>(out, ldo, a, lda, M, K, ld, accumulate, ldk);
    return combo_v<R, VMAX, V + 1>(v, out, ldo, a, lda, M, K, ld, accumulate, ldk);
  }
}

// rows_per_block(L) rows of out[:, 0:cols] (cols rounded up to whole vectors; L the full row length).
static inline void combo_any(float* out, int64_t ldo, const float* a, int64_t lda, const float* M,
                             int64_t K, int64_t ld, int64_t L, bool accumulate, int64_t cols = -1, int64_t ldk = 1) {
  const int64_t v = ((cols < 0 ? L : cols) + W - 1) / W;
  switch (rows_per_block(L)) {
    case 8: return combo_v<8, 2>(v, out, ldo, a, lda, M, K, ld, accumulate, ldk);
    case 4: return combo_v<4, 4>(v, out, ldo, a, lda, M, K, ld, accumulate, ldk);
    case 2: return combo_v<2, 8>(v, out, ldo, a, lda, M, K, ld, accumulate, ldk);
    default: return combo_v<1, 256 / W>(v, out, ldo, a, lda, M, K, ld, accumulate, ldk);
  }
}

// All `rows` rows of out (+)= a @ M, in blocks.
static inline void combo_all(float* out, int64_t ldo, const float* a, int64_t lda, const float* M,
                             int64_t rows, int64_t K, int64_t ld, int64_t L, bool accumulate) {
  const int64_t R = rows_per_block(L);
  for (int64_t i = 0; i < rows; i += R) combo_any(out + i * ldo, ldo, a + i * lda, lda, M, K, ld, L, accumulate);
}

// out (q x q) = a (q rows, stride lda) @ M (K x q), on and below the diagonal only, up to whole vectors:
// the entries past the vector that holds each row's diagonal are left unwritten and never read.
static inline void lower_products(float* out, const float* a, int64_t lda, const float* M, int64_t K, int64_t q) {
  const int64_t R = rows_per_block(q);
  for (int64_t i = 0; i < q; i += R) combo_any(out + i * q, q, a + i * lda, lda, M, K, q, q, false, i + R);
}

// dst (cols x rows, contiguous) = src (rows x cols, row stride ld)^T, both multiples of 16, in 16 x 16 tiles.
static inline void transpose(float* __restrict dst, const float* __restrict src, int64_t rows, int64_t cols, int64_t ld) {
  for (int64_t i = 0; i < rows; i += 16)
    for (int64_t j = 0; j < cols; j += 16) at::vec::transpose_mxn<float, 16, 16>(src + i * ld + j, ld, dst + j * rows + i, rows);
}

// decay[i][j] = exp(A[i]-A[j]) for j <= i else 0 and scores = CB * decay * dt[j], row i. The exponentials are
// taken only up to the vector that holds the diagonal; past it both rows are zero. D may be null (the
// forward needs only the scores).
static inline void decay_row(float* __restrict D, float* __restrict S, const float* __restrict CB,
                             const float* __restrict A, const float* __restrict dt, int64_t i, int64_t q) {
  const Vec ai(A[i]);
  const Vec ninf(-std::numeric_limits<float>::infinity());
  const Vec fi(static_cast<float>(i));
  int64_t j = 0;
  for (; j <= i; j += W) {
    Vec diff = ai - Vec::loadu(A + j);
    Vec above = Vec::arange(static_cast<float>(j), 1.f) > fi;
    Vec d = Vec::blendv(diff, ninf, above).exp();
    if (D) d.store(D + j);
    (d * Vec::loadu(CB + j) * Vec::loadu(dt + j)).store(S + j);
  }
  for (; j < q; j += W) {
    if (D) Vec(0.f).store(D + j);
    Vec(0.f).store(S + j);
  }
}

static inline float sum_of(const Vec& v) {
  return at::vec::vec_reduce_all<float>([](Vec& u, Vec& w) { return u + w; }, v);
}

// Sizes and per-chunk offsets of the position-major tensors. The inputs x, B and C are read where they lie: their
// last two dimensions packed, their batch and position strides anything (slices of the layer's conv output, whose
// rows hold x, B and C side by side), B's and C's the same. What the kernels write (y, and the gradients dx, dB
// and dC) is contiguous, as is what they read of autograd (dy).
struct Layout {
  int64_t b, l, h, p, g, n, r, c, q;
  int64_t xb, xl, bb, bl;  // x's and B's (C's) batch and position strides, in floats
  Layout(const torch::Tensor& x, const torch::Tensor& B, const torch::Tensor& A)
      : b(x.size(0)), l(x.size(1)), h(x.size(2)), p(x.size(3)), g(B.size(2)), n(B.size(3)), r(h / g),
        c(A.size(1)), q(A.size(4)), xb(x.stride(0)), xl(x.stride(1)), bb(B.stride(0)), bl(B.stride(1)) {
    TORCH_CHECK(l == c * q && A.size(3) == r && h == g * r, "ssd chunk kernel: inconsistent shapes");
  }
  int64_t items() const { return b * c * g; }
  // Work item w = (batch, chunk, group).
  int64_t batch(int64_t w) const { return w / (c * g); }
  int64_t chunk(int64_t w) const { return (w / g) % c; }
  int64_t group(int64_t w) const { return w % g; }
  int64_t first(int64_t w) const { return batch(w) * l + chunk(w) * q; }
  // Row 0 of head hh (within the group) in contiguous x-like tensors (y, dy, dx), and of the group in contiguous
  // B-like ones (dB, dC); rows are h*p or g*n apart.
  int64_t x_at(int64_t w, int64_t hh) const { return (first(w) * h + group(w) * r + hh) * p; }
  int64_t b_at(int64_t w) const { return (first(w) * g + group(w)) * n; }
  // The same rows in the inputs x and B, C; rows are xl or bl apart.
  int64_t x_in(int64_t w, int64_t hh) const { return batch(w) * xb + chunk(w) * q * xl + (group(w) * r + hh) * p; }
  int64_t b_in(int64_t w) const { return batch(w) * bb + chunk(w) * q * bl + group(w) * n; }
  // Position 0 of head hh (within the group) in dt-like tensors (b, l, h); positions are h apart.
  int64_t dt_at(int64_t w, int64_t hh) const { return first(w) * h + group(w) * r + hh; }
  // Head hh's (n x p) state in a (b, slots, g, r, n, p) tensor at chunk slot chunk(w) + shift: the chunk states
  // and carried states of the separate operators (slots c), or the fused scan's passed states (slots c + 1, the
  // state carried into chunk k at k, the one it leaves at k + 1).
  int64_t state_at(int64_t w, int64_t hh, int64_t slots, int64_t shift) const {
    return state_block(batch(w), chunk(w) + shift, group(w) * r + hh, slots);
  }
  // The (n x p) state of head `head` (of g * r) of batch row bi at `slot` in a (b, slots, g, r, n, p) tensor.
  int64_t state_block(int64_t bi, int64_t slot, int64_t head, int64_t slots) const {
    return ((bi * slots + slot) * g * r + head) * n * p;
  }
};

// A work item's rows of a position-major tensor (its q positions, its group's `width` floats in each, rows `ld`
// floats apart), asked into the L2 cache ahead of use. The kernels read a head's p floats of each row, 4 KB or
// more apart, which the hardware prefetchers missed: in a perf profile the first pass over dy stalled on memory for
// about a fifth of chunk_output_backward's time. Each work item of the backwards prefetches the next one's rows (the
// forwards timed the same or slower with it).
static inline void prefetch_rows(const float* t, int64_t rows, int64_t width, int64_t ld) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < width; k += 16) __builtin_prefetch(t + i * ld + k, 0, 1);
}

// One head's q step sizes of a chunk, gathered from dt (positions h apart) into a contiguous row.
static inline void gather_dt(float* __restrict out, const float* __restrict dt, int64_t stride, int64_t q) {
  for (int64_t i = 0; i < q; ++i) out[i] = dt[i * stride];
}

static void check_inputs(const char* op, const std::vector<torch::Tensor>& ts) {
  for (const auto& t : ts) {
    TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat, op, ": float32 CPU tensors only");
  }
}

// exp(A_end - A_s) for s in 0..q-1.
static inline void decay_to_end(float* __restrict out, const float* __restrict A, int64_t q) {
  const Vec end(A[q - 1]);
  for (int64_t s = 0; s < q; s += W) (end - Vec::loadu(A + s)).exp().store(out + s);
}

// The checks every scan operator makes: float32 CPU tensors, and dt (b, l, h) as x's first three sizes.
static void check_scan_inputs(const char* op, const std::vector<torch::Tensor>& ts, const torch::Tensor& x,
                              const torch::Tensor& dt) {
  check_inputs(op, ts);
  TORCH_CHECK(dt.dim() == 3 && dt.size(0) == x.size(0) && dt.size(1) == x.size(1) && dt.size(2) == x.size(2),
              op, ": dt must be (b, l, h) as x's first three sizes");
}

// Each position's weight in its chunk's state, wt_s = dte_s dt_s with dte_s = exp(A_end - A_s), for one head.
static inline void state_weights(float* __restrict wt, float* __restrict dte, float* __restrict dth, const float* A,
                                 const float* dt, int64_t stride, int64_t q) {
  decay_to_end(dte, A, q);
  gather_dt(dth, dt, stride, q);
  for (int64_t i = 0; i < q; i += W) (Vec::loadu(dte + i) * Vec::loadu(dth + i)).store(wt + i);
}

// x, B or C as the kernels read them: its last two dimensions packed (copied only if not).
static torch::Tensor packed_rows(const torch::Tensor& t) {
  return t.stride(-1) == 1 && t.stride(-2) == t.size(-1) ? t : t.contiguous();
}

// B and C with their last two dimensions packed and the same strides (the kernels index both with one layout).
static void pack_together(torch::Tensor& B, torch::Tensor& C) {
  B = packed_rows(B); C = packed_rows(C);
  if (B.strides() != C.strides()) { B = B.contiguous(); C = C.contiguous(); }
}

// Where a scan body reads its inputs. The bodies read and write states-like tensors (b, slots, g, r, n, p) at
// chunk slot + shift (Layout::state_at).
struct ScanData {
  const Layout& s;
  const float *B, *C, *A, *x, *dt;
};

// The state each chunk leaves behind from zero, into out at slot shift of `slots`.
static void states_body(const ScanData& d, float* out, int64_t slots, int64_t shift) {
  const Layout& s = d.s;
  at::parallel_for(0, s.items(), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> buf(2 * s.n * s.q + 3 * s.q);
    float *Bt = buf.data(), *coef = Bt + s.n * s.q, *wt = coef + s.n * s.q, *dte = wt + s.q, *dth = dte + s.q;
    for (int64_t w = begin; w < end; ++w) {
      transpose(Bt, d.B + s.b_in(w), s.q, s.n, s.bl);
      for (int64_t hh = 0; hh < s.r; ++hh) {
        const int64_t wh = w * s.r + hh;
        state_weights(wt, dte, dth, d.A + wh * s.q, d.dt + s.dt_at(w, hh), s.h, s.q);
        for (int64_t k = 0; k < s.n; ++k)
          for (int64_t i = 0; i < s.q; i += W) (Vec::loadu(Bt + k * s.q + i) * Vec::loadu(wt + i)).store(coef + k * s.q + i);
        combo_all(out + s.state_at(w, hh, slots, shift), s.p, coef, s.q, d.x + s.x_in(w, hh), s.n, s.q, s.xl, s.p, false);
      }
    }
  });
}

// Gradients of states_body given dstates (read at slot shift of `slots`), written into dB, dA, dx and ddt, or
// added to what they hold (`accumulate`: the fused scan's chunk-output gradients).
static void states_backward_body(const ScanData& d, const float* dsp, int64_t slots, int64_t shift, float* dBp,
                                 float* dAp, float* dxp, float* ddtp, bool accumulate) {
  const Layout& s = d.s;
  at::parallel_for(0, s.items(), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> buf(3 * s.q + 2 * s.q * s.n + s.p * s.n);
    float *wt = buf.data(), *dte = wt + s.q, *dth = dte + s.q, *coef = dth + s.q, *G = coef + s.q * s.n, *dsT = G + s.q * s.n;
    const int64_t ldb = s.g * s.n, ldx = s.h * s.p;
    for (int64_t w = begin; w < end; ++w) {
      if (w + 1 < end) prefetch_rows(d.x + s.x_in(w + 1, 0), s.q, s.r * s.p, s.xl);
      const float* Bw = d.B + s.b_in(w);
      float* dBw = dBp + s.b_at(w);
      if (!accumulate)
        for (int64_t i = 0; i < s.q; ++i) std::fill(dBw + i * ldb, dBw + i * ldb + s.n, 0.f);
      for (int64_t hh = 0; hh < s.r; ++hh) {
        const int64_t wh = w * s.r + hh;
        const float* ds = dsp + s.state_at(w, hh, slots, shift);
        float* dAh = dAp + wh * s.q;
        float* ddth = ddtp + s.dt_at(w, hh);
        state_weights(wt, dte, dth, d.A + wh * s.q, d.dt + s.dt_at(w, hh), s.h, s.q);
        // dx_i = wt_i * B_i . dstates (rows of B scaled by the weights wt = dte * dt)
        for (int64_t i = 0; i < s.q; ++i) {
          const Vec dw(wt[i]);
          for (int64_t k = 0; k < s.n; k += W) (Vec::loadu(Bw + i * s.bl + k) * dw).store(coef + i * s.n + k);
        }
        combo_all(dxp + s.x_at(w, hh), ldx, coef, s.n, ds, s.q, s.n, s.p, s.p, accumulate);
        // G_ik = x_i . dstates_k; dB_i += wt_i G_i; d(wt_i) = B_i . G_i, so ddt_i = dte_i B_i . G_i
        transpose(dsT, ds, s.n, s.p, s.p);
        combo_all(G, s.n, d.x + s.x_in(w, hh), s.xl, dsT, s.q, s.p, s.n, s.n, false);
        float total = 0.f;
        for (int64_t i = 0; i < s.q; ++i) {
          const Vec dw(wt[i]);
          Vec acc(0.f);
          for (int64_t k = 0; k < s.n; k += W) {
            const Vec gk = Vec::loadu(G + i * s.n + k);
            at::vec::fmadd(dw, gk, Vec::loadu(dBw + i * ldb + k)).store(dBw + i * ldb + k);
            acc = at::vec::fmadd(Vec::loadu(Bw + i * s.bl + k), gk, acc);
          }
          const float dwt = sum_of(acc);
          const float grad = dwt * wt[i];  // d/dA_i of dte_i is -dte_i; of A_end, +dte_i
          if (accumulate) {
            ddth[i * s.h] += dwt * dte[i];
            dAh[i] -= grad;
          } else {
            ddth[i * s.h] = dwt * dte[i];
            dAh[i] = -grad;
          }
          total += grad;
        }
        dAh[s.q - 1] += total;
      }
    }
  });
}

// y (contiguous) from the inputs and the state carried into each chunk (read at slot 0 of `slots`).
static void output_body(const ScanData& d, const float* cp, int64_t slots, float* yp) {
  const Layout& s = d.s;
  const int64_t q = s.q, p = s.p, ns = s.n, ldx = s.h * s.p;
  at::parallel_for(0, s.items(), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> buf(ns * q + 2 * q * q + q * ns + q);
    float *Bt = buf.data(), *CB = Bt + ns * q, *S = CB + q * q, *coef = S + q * q, *dth = coef + q * ns;
    const int64_t Rp = rows_per_block(p);
    for (int64_t w = begin; w < end; ++w) {
      const float* Cw = d.C + s.b_in(w);
      transpose(Bt, d.B + s.b_in(w), q, ns, s.bl);
      lower_products(CB, Cw, s.bl, Bt, ns, q);
      for (int64_t hh = 0; hh < s.r; ++hh) {
        const int64_t wh = w * s.r + hh;
        const float* Ah = d.A + wh * q;
        const float* xh = d.x + s.x_in(w, hh);
        const float* ch = cp + s.state_at(w, hh, slots, 0);
        float* yh = yp + s.x_at(w, hh);
        gather_dt(dth, d.dt + s.dt_at(w, hh), s.h, q);
        for (int64_t i = 0; i < q; ++i) {
          decay_row(nullptr, S + i * q, CB + i * q, Ah, dth, i, q);
          const Vec row(std::exp(Ah[i]));
          for (int64_t k = 0; k < ns; k += W) (Vec::loadu(Cw + i * s.bl + k) * row).store(coef + i * ns + k);
        }
        for (int64_t i = 0; i < q; i += Rp) {  // S is zero above the diagonal: rows i..i+Rp-1 need i+Rp columns
          combo_any(yh + i * ldx, ldx, S + i * q, q, xh, i + Rp, s.xl, p, false);
          combo_any(yh + i * ldx, ldx, coef + i * ns, ns, ch, ns, p, p, true);
        }
      }
    }
  });
}

// Gradients of output_body given dy (contiguous), recomputing the (q x q) blocks: dC, dB, dA, dx and ddt written,
// the carried states' gradient written at slot 0 of `slots` (or, `add_carried`, added to what it holds there).
static void output_backward_body(const ScanData& d, const float* dyp, const float* cp, int64_t slots, float* dCp,
                                 float* dBp, float* dAp, float* dxp, float* ddtp, float* dcp, bool add_carried) {
  const Layout& s = d.s;
  const int64_t q = s.q, p = s.p, ns = s.n, ldx = s.h * s.p, ldb = s.g * s.n, ldi = s.bl;
  at::parallel_for(0, s.items(), 1, [&](int64_t begin, int64_t end) {
    std::vector<float> buf(ns * q + 5 * q * q + p * q + q * p + p * ns + ns * q + 3 * q + q * ns);
    float *Bt = buf.data(), *CB = Bt + ns * q, *D = CB + q * q, *S = D + q * q, *dS = S + q * q;
    float *dCBs = dS + q * q, *xT = dCBs + q * q, *dyr = xT + p * q, *carT = dyr + q * p;
    float *Ct = carT + p * ns, *colsum = Ct + ns * q, *dth = colsum + q, *ddtc = dth + q, *tmp = ddtc + q;
    const int64_t Rp = rows_per_block(p), Rn = rows_per_block(ns);
    for (int64_t w = begin; w < end; ++w) {
      if (w + 1 < end) {
        prefetch_rows(dyp + s.x_at(w + 1, 0), q, s.r * p, ldx);
        prefetch_rows(d.x + s.x_in(w + 1, 0), q, s.r * p, s.xl);
      }
      const float *Cw = d.C + s.b_in(w), *Bw = d.B + s.b_in(w);
      float *dCw = dCp + s.b_at(w), *dBw = dBp + s.b_at(w);
      transpose(Bt, Bw, q, ns, ldi);
      transpose(Ct, Cw, q, ns, ldi);
      lower_products(CB, Cw, ldi, Bt, ns, q);
      std::fill(dCBs, dCBs + q * q, 0.f);
      for (int64_t i = 0; i < q; ++i) std::fill(dCw + i * ldb, dCw + i * ldb + ns, 0.f);
      for (int64_t hh = 0; hh < s.r; ++hh) {
        const int64_t wh = w * s.r + hh;
        const float *Ah = d.A + wh * q, *xh = d.x + s.x_in(w, hh), *ch = cp + s.state_at(w, hh, slots, 0);
        const float* dyh = dyp + s.x_at(w, hh);
        float *dAh = dAp + wh * q, *dxh = dxp + s.x_at(w, hh), *dch = dcp + s.state_at(w, hh, slots, 0);
        gather_dt(dth, d.dt + s.dt_at(w, hh), s.h, q);
        for (int64_t i = 0; i < q; ++i) {
          decay_row(D + i * q, S + i * q, CB + i * q, Ah, dth, i, q);
          const Vec row(std::exp(Ah[i]));
          for (int64_t m = 0; m < p; m += W) (Vec::loadu(dyh + i * ldx + m) * row).store(dyr + i * p + m);
        }
        transpose(xT, xh, q, p, s.xl);
        transpose(carT, ch, ns, p, p);
        // dx = S^T dy, S read down its columns: column j of S is zero above row j.
        for (int64_t j = 0; j < q; j += Rp)
          combo_any(dxh + j * ldx, ldx, S + j * q + j, 1, dyh + j * ldx, q - j, ldx, p, false, -1, q);
        lower_products(dS, dyh, ldx, xT, p, q);  // dscores = dy x^T
        combo_all(tmp, ns, dyr, p, carT, q, p, ns, ns, false);  // the carried read-out's dC
        combo_all(dch, p, Ct, q, dyr, ns, q, p, p, add_carried);  // dcarried = C^T (dy * rows)
        std::fill(colsum, colsum + q, 0.f);
        std::fill(ddtc, ddtc + q, 0.f);
        for (int64_t i = 0; i < q; ++i) {
          const float* dSi = dS + i * q;
          Vec rs(0.f);
          for (int64_t j = 0; j <= i; j += W) {  // D and S are zero past the diagonal's vector
            // S_ij = CB_ij D_ij dt_j: dCB_ij += dS_ij D_ij dt_j, ddt_j += dS_ij D_ij CB_ij
            Vec gr = Vec::loadu(dSi + j);
            const Vec gd = gr * Vec::loadu(D + i * q + j);
            at::vec::fmadd(gd, Vec::loadu(dth + j), Vec::loadu(dCBs + i * q + j)).store(dCBs + i * q + j);
            at::vec::fmadd(gd, Vec::loadu(CB + i * q + j), Vec::loadu(ddtc + j)).store(ddtc + j);
            Vec seg = gr * Vec::loadu(S + i * q + j);
            rs = rs + seg;
            (Vec::loadu(colsum + j) + seg).store(colsum + j);
          }
          Vec carried_part(0.f);
          for (int64_t k = 0; k < ns; k += W) {
            const Vec t = Vec::loadu(tmp + i * ns + k);
            carried_part = at::vec::fmadd(t, Vec::loadu(Cw + i * ldi + k), carried_part);
            (Vec::loadu(dCw + i * ldb + k) + t).store(dCw + i * ldb + k);
          }
          dAh[i] = sum_of(rs) + sum_of(carried_part);
        }
        for (int64_t j = 0; j < q; ++j) dAh[j] -= colsum[j];
        float* ddth = ddtp + s.dt_at(w, hh);
        for (int64_t j = 0; j < q; ++j) ddth[j * s.h] = ddtc[j];
      }
      for (int64_t i = 0; i < q; i += Rn) combo_any(dCw + i * ldb, ldb, dCBs + i * q, q, Bw, i + Rn, ldi, ns, true);
      for (int64_t j = 0; j < q; j += Rn)  // dB = dCB^T C, dCB read down its columns
        combo_any(dBw + j * ldb, ldb, dCBs + j * q + j, 1, Cw + j * ldi, q - j, ldi, ns, false, -1, q);
    }
  });
}

// Each (n x p) state block of one head and chunk slot in the passed states (b, c + 1, g, r, n, p), and the decay
// over chunk k, exp(A[k, q - 1]), from A (b, c, g, r, q); heads are (batch, group, head) = (b, g * r).
struct PassedStates {
  const Layout& s;
  int64_t block() const { return s.n * s.p; }
  int64_t at(int64_t bi, int64_t k, int64_t head) const { return s.state_block(bi, k, head, s.c + 1); }
  int64_t decay_at(int64_t bi, int64_t k, int64_t head) const { return ((bi * s.c + k) * s.g * s.r + head) * s.q + s.q - 1; }
};

// States passed from chunk to chunk in place: slot 0 holds the initial state and slot k + 1 the state chunk k
// leaves behind from zero; after, slot k holds the state carried into chunk k (slot c the final one):
// P_{k+1} = exp(A_k) P_k + S_k.
static void pass_states(const Layout& s, const float* Ap, float* passed) {
  const PassedStates ps{s};
  at::parallel_for(0, s.b * s.g * s.r, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t bi = bh / (s.g * s.r), head = bh % (s.g * s.r);
      for (int64_t k = 0; k < s.c; ++k) {
        const Vec a(std::exp(Ap[ps.decay_at(bi, k, head)]));
        const float* prev = passed + ps.at(bi, k, head);
        float* next = passed + ps.at(bi, k + 1, head);
        for (int64_t e = 0; e < ps.block(); e += W) at::vec::fmadd(a, Vec::loadu(prev + e), Vec::loadu(next + e)).store(next + e);
      }
    }
  });
}

// pass_states' backward in place: G holds each slot's direct gradient (the final state's, and each carried
// state's from the chunk outputs); after, slot k holds the total gradient of P_k, so slot k + 1 is chunk k's
// state gradient and slot 0 the initial state's. Adds d/dA_k = exp(A_k) <G_{k+1}, P_k> to dA.
static void pass_states_backward(const Layout& s, const float* Ap, const float* passed, float* G, float* dAp) {
  const PassedStates ps{s};
  at::parallel_for(0, s.b * s.g * s.r, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t bi = bh / (s.g * s.r), head = bh % (s.g * s.r);
      for (int64_t k = s.c - 1; k >= 0; --k) {
        const float a = std::exp(Ap[ps.decay_at(bi, k, head)]);
        const float* later = G + ps.at(bi, k + 1, head);
        const float* state = passed + ps.at(bi, k, head);
        float* here = G + ps.at(bi, k, head);
        Vec dot(0.f);
        const Vec av(a);
        for (int64_t e = 0; e < ps.block(); e += W) {
          const Vec gl = Vec::loadu(later + e);
          dot = at::vec::fmadd(gl, Vec::loadu(state + e), dot);
          at::vec::fmadd(av, gl, Vec::loadu(here + e)).store(here + e);
        }
        dAp[ps.decay_at(bi, k, head)] += a * sum_of(dot);
      }
    }
  });
}

// The operators' inputs, checked and laid out as the bodies read them.
struct ScanInputs {
  torch::Tensor B, C, A, x, dt;
  ScanInputs(const char* op, torch::Tensor B_, torch::Tensor C_, torch::Tensor A_, torch::Tensor x_, torch::Tensor dt_,
             std::vector<torch::Tensor> others)
      : B(B_), C(C_), A(A_.contiguous()), x(packed_rows(x_)), dt(dt_.contiguous()) {
    others.insert(others.end(), {B_, C_, A_, x_, dt_});
    check_scan_inputs(op, others, x_, dt_);
    pack_together(B, C);
  }
  ScanData data(const Layout& s) const {
    return {s, B.data_ptr<float>(), C.data_ptr<float>(), A.data_ptr<float>(), x.data_ptr<float>(), dt.data_ptr<float>()};
  }
};

// states (b, c, g, r, n, p) from B (b, l, g, n), A (b, c, g, r, q), x (b, l, h, p), dt (b, l, h).
torch::Tensor chunk_states_forward(torch::Tensor B, torch::Tensor A, torch::Tensor x, torch::Tensor dt) {
  const ScanInputs in("chunk_states", B, B, A, x, dt, {});
  const Layout s(in.x, in.B, in.A);
  auto states = torch::empty({s.b, s.c, s.g, s.r, s.n, s.p}, x.options());
  states_body(in.data(s), states.data_ptr<float>(), s.c, 0);
  return states;
}

// Gradients (dB, dA, dx, ddt) of chunk_states_forward given dstates.
std::vector<torch::Tensor> chunk_states_backward(torch::Tensor dstates, torch::Tensor B, torch::Tensor A, torch::Tensor x,
                                                 torch::Tensor dt) {
  const ScanInputs in("chunk_states_backward", B, B, A, x, dt, {dstates});
  dstates = dstates.contiguous();
  const Layout s(in.x, in.B, in.A);
  auto dB = torch::empty(B.sizes(), B.options()), dA = torch::empty(A.sizes(), A.options());
  auto dx = torch::empty(x.sizes(), x.options()), ddt = torch::empty(dt.sizes(), dt.options());
  states_backward_body(in.data(s), dstates.data_ptr<float>(), s.c, 0, dB.data_ptr<float>(), dA.data_ptr<float>(),
                       dx.data_ptr<float>(), ddt.data_ptr<float>(), false);
  return {dB, dA, dx, ddt};
}

// y (b, l, h, p) from C, B (b, l, g, n), A (b, c, g, r, q), x (b, l, h, p), dt (b, l, h), carried (b, c, g, r, n, p).
torch::Tensor chunk_output_forward(torch::Tensor C, torch::Tensor B, torch::Tensor A, torch::Tensor x, torch::Tensor dt,
                                   torch::Tensor carried) {
  const ScanInputs in("chunk_output", B, C, A, x, dt, {carried});
  carried = carried.contiguous();
  const Layout s(in.x, in.B, in.A);
  auto y = torch::empty(x.sizes(), x.options());
  output_body(in.data(s), carried.data_ptr<float>(), s.c, y.data_ptr<float>());
  return y;
}

// Gradients (dC, dB, dA, dx, ddt, dcarried) of chunk_output_forward, recomputing the (q x q) blocks.
std::vector<torch::Tensor> chunk_output_backward(torch::Tensor dy, torch::Tensor C, torch::Tensor B, torch::Tensor A, torch::Tensor x,
                                                 torch::Tensor dt, torch::Tensor carried) {
  const ScanInputs in("chunk_output_backward", B, C, A, x, dt, {dy, carried});
  dy = dy.contiguous(); carried = carried.contiguous();
  const Layout s(in.x, in.B, in.A);
  auto dC = torch::empty(C.sizes(), C.options()), dB = torch::empty(B.sizes(), B.options());
  auto dA = torch::empty(A.sizes(), A.options()), dx = torch::empty(x.sizes(), x.options());
  auto ddt = torch::empty(dt.sizes(), dt.options()), dcar = torch::empty(carried.sizes(), carried.options());
  output_backward_body(in.data(s), dy.data_ptr<float>(), carried.data_ptr<float>(), s.c, dC.data_ptr<float>(),
                       dB.data_ptr<float>(), dA.data_ptr<float>(), dx.data_ptr<float>(), ddt.data_ptr<float>(),
                       dcar.data_ptr<float>(), false);
  return {dC, dB, dA, dx, ddt, dcar};
}

// The whole chunked scan in one operator: each chunk's state, the states passed from chunk to chunk from
// `initial` (b, g, r, n, p), and each chunk's outputs. Returns y (b, l, h, p) and the passed states
// (b, c + 1, g, r, n, p): slot k the state carried into chunk k, slot c the final state. One call where the
// separate operators and the PyTorch pass between them made several, with their copies and concatenations.
std::tuple<torch::Tensor, torch::Tensor> scan_forward(torch::Tensor C, torch::Tensor B, torch::Tensor A, torch::Tensor x, torch::Tensor dt,
                                        torch::Tensor initial) {
  const ScanInputs in("scan", B, C, A, x, dt, {initial});
  const Layout s(in.x, in.B, in.A);
  TORCH_CHECK(initial.dim() == 5 && initial.size(0) == s.b && initial.size(1) == s.g && initial.size(2) == s.r &&
                  initial.size(3) == s.n && initial.size(4) == s.p, "scan: initial must be (b, g, r, n, p)");
  auto passed = torch::empty({s.b, s.c + 1, s.g, s.r, s.n, s.p}, x.options());
  passed.select(1, 0).copy_(initial);
  const ScanData d = in.data(s);
  states_body(d, passed.data_ptr<float>(), s.c + 1, 1);
  pass_states(s, d.A, passed.data_ptr<float>());
  auto y = torch::empty(x.sizes(), x.options());
  output_body(d, passed.data_ptr<float>(), s.c + 1, y.data_ptr<float>());
  return {y, passed};
}

// Gradients (dC, dB, dA, dx, ddt, dinitial) of scan_forward given dy and the passed states' gradient (None: zero),
// from its saved passed states. The chunk outputs' gradients are written first, then the states' are added to them.
std::vector<torch::Tensor> scan_backward(torch::Tensor dy, std::optional<torch::Tensor> dpassed, torch::Tensor C, torch::Tensor B,
                                         torch::Tensor A, torch::Tensor x, torch::Tensor dt, torch::Tensor passed) {
  const ScanInputs in("scan_backward", B, C, A, x, dt, {dy, passed});
  dy = dy.contiguous(); passed = passed.contiguous();
  const Layout s(in.x, in.B, in.A);
  TORCH_CHECK(passed.dim() == 6 && passed.size(1) == s.c + 1, "scan_backward: passed must be (b, c + 1, g, r, n, p)");
  // G: each passed state's gradient. With none given for them (the final state unused, as in training), the chunk
  // outputs' gradients are written into it rather than added to zeros.
  const bool given = dpassed.has_value() && dpassed->defined();
  auto G = given ? dpassed->contiguous().clone() : torch::empty_like(passed);
  if (!given) G.select(1, s.c).zero_();
  auto dC = torch::empty(C.sizes(), C.options()), dB = torch::empty(B.sizes(), B.options());
  auto dA = torch::empty(A.sizes(), A.options()), dx = torch::empty(x.sizes(), x.options());
  auto ddt = torch::empty(dt.sizes(), dt.options());
  const ScanData d = in.data(s);
  float *dAp = dA.data_ptr<float>(), *dxp = dx.data_ptr<float>(), *ddtp = ddt.data_ptr<float>(), *Gp = G.data_ptr<float>();
  output_backward_body(d, dy.data_ptr<float>(), passed.data_ptr<float>(), s.c + 1, dC.data_ptr<float>(),
                       dB.data_ptr<float>(), dAp, dxp, ddtp, Gp, given);
  pass_states_backward(s, d.A, passed.data_ptr<float>(), Gp, dAp);
  states_backward_body(d, Gp, s.c + 1, 1, dB.data_ptr<float>(), dAp, dxp, ddtp, true);
  return {dC, dB, dA, dx, ddt, G.select(1, 0).clone()};
}

// The layer's output norm with its skip, per row: g = (y + D x) * silu(z), out = g * rsqrt(mean(g^2) + eps) * w,
// the mean over each group of `group` channels (mamba_ssm's RMSNormGated, norm_before_gate=False). y, x, z and
// out are (rows, d) with unit column stride and any row stride (x and z are slices of wider projections); D is
// per head (d / D.size(0) channels each). One pass over each row, which stays in cache, where the traced form
// makes several over the whole tensor, its weight and D gradients among them as column sums.
struct NormRows {
  int64_t rows, d, group, heads, head;
  NormRows(const torch::Tensor& y, const torch::Tensor& D, int64_t group_)
      : rows(y.size(0)), d(y.size(1)), group(group_), heads(D.size(0)), head(y.size(1) / D.size(0)) {
    TORCH_CHECK(d % W == 0 && group % W == 0 && d % group == 0 && d % heads == 0 && head % W == 0,
                "gated norm kernel: channel counts must be whole vectors");
  }
  // D per channel rather than per head, so the inner loops index it like the rows, with no division.
  std::vector<float> per_channel(const float* D) const {
    std::vector<float> out(d);
    for (int64_t c = 0; c < d; ++c) out[c] = D[c / head];
    return out;
  }
};

// `t` (dims dimensions) with unit stride along its last one, copied only if it lacks that; its other strides
// may be anything, so slices of wider tensors are read where they lie.
static torch::Tensor unit_last_stride(const torch::Tensor& t, int64_t dims, const char* op) {
  TORCH_CHECK(t.dim() == dims, op, ": a tensor of ", dims, " dimensions was expected");
  return t.stride(-1) == 1 ? t : t.contiguous();
}

// Column sums that each thread adds into its own row of `width` floats (all zero at first), added up after:
// no thread writes another's row, and a thread that got no work leaves zeros.
struct PerThreadSums {
  int64_t width;
  std::vector<float> rows;
  explicit PerThreadSums(int64_t width_) : width(width_), rows(at::get_num_threads() * width_, 0.f) {}
  float* mine() { return rows.data() + at::get_thread_num() * width; }
  std::vector<float> total() const {
    std::vector<float> sum(width, 0.f);
    for (int64_t first = 0; first < static_cast<int64_t>(rows.size()); first += width)
      for (int64_t c = 0; c < width; ++c) sum[c] += rows[first + c];
    return sum;
  }
};

// A vector of channels as float32, from float32 or bfloat16 (the projection's output under bf16 autocast), and back.
static inline Vec load_f(const float* p) { return Vec::loadu(p); }
static inline Vec load_f(const at::BFloat16* p) {
  Vec v;
  at::vec::load_to_float<at::BFloat16>(p, v);
  return v;
}
static inline void store_f(const Vec& v, float* p) { v.store(p); }
static inline void store_f(const Vec& v, at::BFloat16* p) { at::vec::convert_from_float<at::BFloat16>(v, v).store(p, W); }

// Runs body(T{}) with T the element type of `t`: float, or at::BFloat16.
template <typename Body>
static auto with_element_type(const torch::Tensor& t, const char* op, Body body) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16, op, ": float32 or bfloat16 expected");
  return t.scalar_type() == at::kBFloat16 ? body(at::BFloat16{}) : body(float{});
}

// sigmoid(z), a vector of channels at a time, on ATen's faster exponential (20 ulp; its error stays under that of
// the row's float32 sums: the kernel's outputs and gradients are as close to float64 as with the 1-ulp one, and
// it was the faster of the two in a one-off timing).
// The division is a reciprocal estimate refined by one Newton step where AVX-512 has one (14 bits, then about 28,
// within float32's rounding), as a vector division takes several times an FMA's throughput.
static inline Vec reciprocal_of(const Vec& d) {
#if defined(CPU_CAPABILITY_AVX512)
  const Vec r(_mm512_rcp14_ps(d));
  return r * at::vec::fnmadd(d, r, Vec(2.f));
#else
  return Vec(1.f) / d;
#endif
}
static inline Vec sigmoid_of(const Vec& z) { return reciprocal_of(Vec(1.f) + z.neg().exp_u20()); }

// z and the output are float32, or both bfloat16 (z a slice of the bf16 projection under autocast, the output
// what the bf16 output projection reads): the same values as casting in PyTorch around a float32 kernel.
torch::Tensor gated_norm_forward(torch::Tensor y, torch::Tensor x, torch::Tensor D, torch::Tensor z,
                                 torch::Tensor weight, int64_t group, double eps) {
  check_inputs("gated_norm", {y, x, D, weight});
  y = unit_last_stride(y, 2, "gated_norm"); x = unit_last_stride(x, 2, "gated_norm");
  z = unit_last_stride(z, 2, "gated_norm"); D = D.contiguous(); weight = weight.contiguous();
  const NormRows s(y, D, group);
  auto out = torch::empty({s.rows, s.d}, y.options().dtype(z.scalar_type()));
  const int64_t sy = y.stride(0), sx = x.stride(0), sz = z.stride(0);
  const float *yp = y.data_ptr<float>(), *xp = x.data_ptr<float>(), *wp = weight.data_ptr<float>();
  const std::vector<float> D_channels = s.per_channel(D.data_ptr<float>());
  const float* Dc = D_channels.data();
  with_element_type(z, "gated_norm", [&](auto element) {
  using T = decltype(element);
  const T* zp = z.data_ptr<T>();
  T* op = out.data_ptr<T>();
  at::parallel_for(0, s.rows, 64, [&](int64_t begin, int64_t end) {
    std::vector<float> g(s.d);
    for (int64_t i = begin; i < end; ++i) {
      const float *yi = yp + i * sy, *xi = xp + i * sx;
      const T* zi = zp + i * sz;
      for (int64_t c0 = 0; c0 < s.d; c0 += s.group) {
        Vec sq(0.f);
        for (int64_t c = c0; c < c0 + s.group; c += W) {
          const Vec zc = load_f(zi + c);
          const Vec gc = at::vec::fmadd(Vec::loadu(Dc + c), Vec::loadu(xi + c), Vec::loadu(yi + c)) * zc * sigmoid_of(zc);
          gc.store(g.data() + c);
          sq = at::vec::fmadd(gc, gc, sq);
        }
        const Vec r(1.f / std::sqrt(sum_of(sq) / static_cast<float>(s.group) + static_cast<float>(eps)));
        for (int64_t c = c0; c < c0 + s.group; c += W)
          store_f(Vec::loadu(g.data() + c) * r * Vec::loadu(wp + c), op + i * s.d + c);
      }
    }
  });
  });
  return out;
}

// Gradients (dy, dx, dD, dz, dweight) of gated_norm_forward given dout; dy is also the gradient of D x, and dx
// is its part through the skip only. dout and dz take z's element type, the rest float32.
std::vector<torch::Tensor> gated_norm_backward(torch::Tensor dout, torch::Tensor y, torch::Tensor x, torch::Tensor D,
                                               torch::Tensor z, torch::Tensor weight, int64_t group, double eps) {
  check_inputs("gated_norm_backward", {y, x, D, weight});
  TORCH_CHECK(dout.scalar_type() == z.scalar_type(), "gated_norm_backward: dout must have z's element type");
  dout = dout.contiguous(); y = unit_last_stride(y, 2, "gated_norm_backward");
  x = unit_last_stride(x, 2, "gated_norm_backward"); z = unit_last_stride(z, 2, "gated_norm_backward");
  D = D.contiguous(); weight = weight.contiguous();
  const NormRows s(y, D, group);
  auto dy = torch::empty({s.rows, s.d}, y.options()), dx = torch::empty({s.rows, s.d}, y.options());
  auto dz = torch::empty({s.rows, s.d}, z.options());
  const int64_t sy = y.stride(0), sx = x.stride(0), sz = z.stride(0);
  const float *yp = y.data_ptr<float>(), *xp = x.data_ptr<float>(), *wp = weight.data_ptr<float>();
  const std::vector<float> D_channels = s.per_channel(D.data_ptr<float>());
  const float* Dc = D_channels.data();
  float *dyp = dy.data_ptr<float>(), *dxp = dx.data_ptr<float>();
  PerThreadSums sums(s.d + s.heads);  // dweight, then dD
  with_element_type(z, "gated_norm_backward", [&](auto element) {
  using T = decltype(element);
  const T *zp = z.data_ptr<T>(), *gop = dout.data_ptr<T>();
  T* dzp = dz.data_ptr<T>();
  at::parallel_for(0, s.rows, 64, [&](int64_t begin, int64_t end) {
    float *dw = sums.mine(), *dD = dw + s.d;
    std::vector<float> buf(4 * s.d, 0.f);
    float *Y = buf.data(), *sig = Y + s.d, *g = sig + s.d, *dDv = g + s.d;  // dDv: D's gradient per channel
    for (int64_t i = begin; i < end; ++i) {
      const float *yi = yp + i * sy, *xi = xp + i * sx;
      const T *zi = zp + i * sz, *doi = gop + i * s.d;
      for (int64_t c0 = 0; c0 < s.d; c0 += s.group) {
        Vec sq(0.f);
        for (int64_t c = c0; c < c0 + s.group; c += W) {
          const Vec zc = load_f(zi + c), sc = sigmoid_of(zc);
          const Vec Yc = at::vec::fmadd(Vec::loadu(Dc + c), Vec::loadu(xi + c), Vec::loadu(yi + c));
          const Vec gc = Yc * zc * sc;
          Yc.store(Y + c); sc.store(sig + c); gc.store(g + c);
          sq = at::vec::fmadd(gc, gc, sq);
        }
        const float r = 1.f / std::sqrt(sum_of(sq) / static_cast<float>(s.group) + static_cast<float>(eps));
        // mean(dghat . g) with dghat = dout * w
        Vec dot(0.f);
        for (int64_t c = c0; c < c0 + s.group; c += W)
          dot = at::vec::fmadd(load_f(doi + c) * Vec::loadu(wp + c), Vec::loadu(g + c), dot);
        const Vec rv(r), k(r * r * r * sum_of(dot) / static_cast<float>(s.group));
        for (int64_t c = c0; c < c0 + s.group; c += W) {
          const Vec doc = load_f(doi + c), gc = Vec::loadu(g + c), zc = load_f(zi + c);
          const Vec sc = Vec::loadu(sig + c), Yc = Vec::loadu(Y + c);
          at::vec::fmadd(doc, gc * rv, Vec::loadu(dw + c)).store(dw + c);
          const Vec dg = rv * doc * Vec::loadu(wp + c) - k * gc;  // d out / d g, the RMS statistic's part included
          const Vec silu = zc * sc;
          const Vec dYc = dg * silu;
          dYc.store(dyp + i * s.d + c);
          (dYc * Vec::loadu(Dc + c)).store(dxp + i * s.d + c);
          at::vec::fmadd(dYc, Vec::loadu(xi + c), Vec::loadu(dDv + c)).store(dDv + c);
          store_f(dg * Yc * sc * (Vec(1.f) + zc * (Vec(1.f) - sc)), dzp + i * s.d + c);
        }
      }
    }
    for (int64_t c = 0; c < s.d; ++c) dD[c / s.head] += dDv[c];
  });
  });
  const std::vector<float> total = sums.total();
  auto dweight = torch::empty({s.d}, y.options()), dD = torch::empty({s.heads}, y.options());
  std::copy(total.begin(), total.begin() + s.d, dweight.data_ptr<float>());
  std::copy(total.begin() + s.d, total.end(), dD.data_ptr<float>());
  return {dy, dx, dD, dz, dweight};
}

// The residual stream's RMSNorm, per row: out = x * rsqrt(mean(x^2) + eps) * w. x is float32 (rows, d) with unit
// column stride and any row stride; out is float32, or bfloat16 where a bf16 projection reads it under autocast
// (the values a cast of the float32 result gives). One pass over each row where PyTorch makes about six over the
// whole tensor forward and eight backward, the weight gradient among them as a column sum.
torch::Tensor rms_norm_forward(torch::Tensor x, torch::Tensor weight, double eps, bool bf16_out) {
  check_inputs("rms_norm", {x, weight});
  x = unit_last_stride(x, 2, "rms_norm"); weight = weight.contiguous();
  const int64_t rows = x.size(0), d = x.size(1), sx = x.stride(0);
  TORCH_CHECK(d % W == 0 && weight.numel() == d, "rms_norm kernel: the channels must be whole vectors");
  auto out = torch::empty({rows, d}, x.options().dtype(bf16_out ? at::kBFloat16 : at::kFloat));
  const float *xp = x.data_ptr<float>(), *wp = weight.data_ptr<float>();
  with_element_type(out, "rms_norm", [&](auto element) {
  using T = decltype(element);
  T* op = out.data_ptr<T>();
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* xi = xp + i * sx;
      Vec sq(0.f);
      for (int64_t c = 0; c < d; c += W) sq = at::vec::fmadd(Vec::loadu(xi + c), Vec::loadu(xi + c), sq);
      const Vec r(1.f / std::sqrt(sum_of(sq) / static_cast<float>(d) + static_cast<float>(eps)));
      for (int64_t c = 0; c < d; c += W) store_f(Vec::loadu(xi + c) * r * Vec::loadu(wp + c), op + i * d + c);
    }
  });
  });
  return out;
}

// Gradients (dx, dweight) of rms_norm_forward given dout (the output's element type), recomputing each row's
// statistic: dx = r (dout w) - x r^3 mean(dout w x), dweight = sum over rows of dout x r.
std::vector<torch::Tensor> rms_norm_backward(torch::Tensor dout, torch::Tensor x, torch::Tensor weight, double eps) {
  check_inputs("rms_norm_backward", {x, weight});
  dout = dout.contiguous(); x = unit_last_stride(x, 2, "rms_norm_backward"); weight = weight.contiguous();
  const int64_t rows = x.size(0), d = x.size(1), sx = x.stride(0);
  TORCH_CHECK(dout.dim() == 2 && dout.size(0) == rows && dout.size(1) == d, "rms_norm_backward: dout must be x's shape");
  auto dx = torch::empty({rows, d}, x.options());
  const float *xp = x.data_ptr<float>(), *wp = weight.data_ptr<float>();
  float* dxp = dx.data_ptr<float>();
  PerThreadSums sums(d);
  with_element_type(dout, "rms_norm_backward", [&](auto element) {
  using T = decltype(element);
  const T* gp = dout.data_ptr<T>();
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    float* dw = sums.mine();
    for (int64_t i = begin; i < end; ++i) {
      const float* xi = xp + i * sx;
      const T* gi = gp + i * d;
      Vec sq(0.f), dot(0.f);
      for (int64_t c = 0; c < d; c += W) {
        const Vec xc = Vec::loadu(xi + c);
        sq = at::vec::fmadd(xc, xc, sq);
        dot = at::vec::fmadd(load_f(gi + c) * Vec::loadu(wp + c), xc, dot);
      }
      const float r = 1.f / std::sqrt(sum_of(sq) / static_cast<float>(d) + static_cast<float>(eps));
      const Vec rv(r), k(r * r * r * sum_of(dot) / static_cast<float>(d));
      for (int64_t c = 0; c < d; c += W) {
        const Vec xc = Vec::loadu(xi + c), gc = load_f(gi + c);
        at::vec::fmadd(gc, xc * rv, Vec::loadu(dw + c)).store(dw + c);
        (rv * gc * Vec::loadu(wp + c) - k * xc).store(dxp + i * d + c);
      }
    }
  });
  });
  const std::vector<float> total = sums.total();
  auto dweight = torch::empty({d}, x.options());
  std::copy(total.begin(), total.end(), dweight.data_ptr<float>());
  return {dx, dweight};
}

// The layer's causal depthwise convolution and its SiLU: out[t] = silu(bias + sum_i w[i] x[t - K + 1 + i]), x
// zero before each sequence's start. x (b, l, C) has unit channel stride and any other strides (it is a slice of
// the input projection), float32 or bfloat16 (the projection's output under bf16 autocast, read as float32 where
// PyTorch would first cast a copy); the output is float32, as the scan takes it; weight (C, 1, K) as nn.Conv1d
// holds it. The backward recomputes the pre-activation rather than saving it, writes dx in x's element type, and
// its weight and bias gradients are per-thread column sums added up at the end.
struct ConvRows {
  int64_t b, l, C, K, sb, sl;
  ConvRows(const torch::Tensor& x, const torch::Tensor& weight)
      : b(x.size(0)), l(x.size(1)), C(x.size(2)), K(weight.size(-1)), sb(x.stride(0)), sl(x.stride(1)) {
    TORCH_CHECK(C % W == 0 && weight.size(0) == C, "conv kernel: channel counts must be whole vectors");
    TORCH_CHECK(K <= KMAX, "conv kernel: at most ", KMAX, " taps");
  }
  static constexpr int64_t KMAX = 8;
};

// The inputs row r's pre-activation reads, found once per row (not per vector of channels: the divisions that
// place a row in its sequence cost more than the taps' arithmetic): in[i] is x at position t-K+1+i of the
// row's sequence (t = r % l), for taps i >= first; earlier taps fall before the sequence's start.
template <typename T>
struct ConvWindow {
  const T* in[ConvRows::KMAX];
  int64_t t, first;
  ConvWindow() = default;
  ConvWindow(const ConvRows& s, const T* xp, int64_t r) : t(r % s.l), first(std::max<int64_t>(0, s.K - 1 - t)) {
    const T* start = xp + (r / s.l) * s.sb;
    for (int64_t i = first; i < s.K; ++i) in[i] = start + (t - (s.K - 1) + i) * s.sl;
  }
};

// (K, C) taps from the (C, 1, K) weight: each tap's channels contiguous.
static std::vector<float> taps_of(const torch::Tensor& weight, int64_t C, int64_t K) {
  const float* w = weight.data_ptr<float>();
  std::vector<float> taps(K * C);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < K; ++i) taps[i * C + c] = w[c * K + i];
  return taps;
}

// The pre-activation of a row at channels c..c+W-1: bias plus the taps over its window's inputs.
template <typename T>
static inline Vec conv_at(const ConvRows& s, const ConvWindow<T>& win, const float* taps, const float* bias, int64_t c) {
  Vec acc = Vec::loadu(bias + c);
  for (int64_t i = win.first; i < s.K; ++i) acc = at::vec::fmadd(Vec::loadu(taps + i * s.C + c), load_f(win.in[i] + c), acc);
  return acc;
}

torch::Tensor conv_silu_forward(torch::Tensor x, torch::Tensor weight, torch::Tensor bias) {
  check_inputs("conv_silu", {weight, bias});
  x = unit_last_stride(x, 3, "conv_silu"); weight = weight.contiguous(); bias = bias.contiguous();
  const ConvRows s(x, weight);
  auto out = torch::empty({s.b, s.l, s.C}, x.options().dtype(at::kFloat));
  const std::vector<float> taps = taps_of(weight, s.C, s.K);
  const float* bp = bias.data_ptr<float>();
  float* op = out.data_ptr<float>();
  with_element_type(x, "conv_silu", [&](auto element) {
  using T = decltype(element);
  const T* xp = x.data_ptr<T>();
  at::parallel_for(0, s.b * s.l, 64, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const ConvWindow<T> win(s, xp, r);
      for (int64_t c = 0; c < s.C; c += W) {
        const Vec a = conv_at(s, win, taps.data(), bp, c);
        (a * sigmoid_of(a)).store(op + r * s.C + c);
      }
    }
  });
  });
  return out;
}

// Gradients (dx, dweight, dbias) of conv_silu_forward given dout.
std::vector<torch::Tensor> conv_silu_backward(torch::Tensor dout, torch::Tensor x, torch::Tensor weight, torch::Tensor bias) {
  check_inputs("conv_silu_backward", {dout, weight, bias});
  dout = dout.contiguous(); x = unit_last_stride(x, 3, "conv_silu_backward");
  weight = weight.contiguous(); bias = bias.contiguous();
  const ConvRows s(x, weight);
  const int64_t rows = s.b * s.l, C = s.C, K = s.K;
  auto dx = torch::empty({s.b, s.l, C}, x.options());
  const std::vector<float> taps = taps_of(weight, C, K);
  const float *bp = bias.data_ptr<float>(), *gp = dout.data_ptr<float>();
  PerThreadSums sums((K + 1) * C);  // K taps' gradients, (K, C), then the bias's
  constexpr int64_t BLOCK = 64;
  with_element_type(x, "conv_silu_backward", [&](auto element) {
  using T = decltype(element);
  const T* xp = x.data_ptr<T>();
  T* dxp = dx.data_ptr<T>();
  at::parallel_for(0, rows, BLOCK, [&](int64_t begin, int64_t end) {
    float* dw = sums.mine();
    float* db = dw + K * C;
    // da for the rows of a block and the K-1 after it (dx[t] reads da[t..t+K-1] of its own sequence).
    std::vector<float> da((BLOCK + K - 1) * C);
    std::vector<ConvWindow<T>> wins(BLOCK + K - 1);
    for (int64_t r0 = begin; r0 < end; r0 += BLOCK) {
      const int64_t r1 = std::min(end, r0 + BLOCK);
      const int64_t last = std::min(rows, r1 + K - 1);
      for (int64_t r = r0; r < last; ++r) {
        const ConvWindow<T>& win = wins[r - r0] = ConvWindow<T>(s, xp, r);
        for (int64_t c = 0; c < C; c += W) {
          const Vec a = conv_at(s, win, taps.data(), bp, c), sg = sigmoid_of(a);
          (Vec::loadu(gp + r * C + c) * sg * (Vec(1.f) + a * (Vec(1.f) - sg))).store(da.data() + (r - r0) * C + c);
        }
      }
      // Channels outer, rows inner: a vector's tap and bias gradients stay in registers over the block.
      for (int64_t c = 0; c < C; c += W) {
        Vec dwc[ConvRows::KMAX], dbc(0.f);
        for (int64_t i = 0; i < K; ++i) dwc[i] = Vec(0.f);
        for (int64_t r = r0; r < r1; ++r) {
          const ConvWindow<T>& win = wins[r - r0];
          const int64_t ahead = std::min(K, s.l - win.t);  // da[t + j] for j < ahead lies in this sequence
          const float* dar = da.data() + (r - r0) * C;
          const Vec g = Vec::loadu(dar + c);
          Vec acc = g * Vec::loadu(taps.data() + (K - 1) * C + c);
          for (int64_t j = 1; j < ahead; ++j)
            acc = at::vec::fmadd(Vec::loadu(taps.data() + (K - 1 - j) * C + c), Vec::loadu(dar + j * C + c), acc);
          store_f(acc, dxp + r * C + c);
          dbc = dbc + g;
          for (int64_t i = win.first; i < K; ++i) dwc[i] = at::vec::fmadd(g, load_f(win.in[i] + c), dwc[i]);  // tap i read x at t-K+1+i
        }
        for (int64_t i = 0; i < K; ++i) (Vec::loadu(dw + i * C + c) + dwc[i]).store(dw + i * C + c);
        (Vec::loadu(db + c) + dbc).store(db + c);
      }
    }
  });
  });
  const std::vector<float> total = sums.total();
  auto dweight = torch::empty_like(weight), dbias = torch::empty_like(bias);
  float *dwp = dweight.data_ptr<float>(), *dbp = dbias.data_ptr<float>();
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t i = 0; i < K; ++i) dwp[c * K + i] = total[i * C + c];  // (K, C) back to nn.Conv1d's (C, 1, K)
    dbp[c] = total[K * C + c];
  }
  return {dx, dweight, dbias};
}

// Attention's rotary embedding with the split of the fused projection: qkv (b, l, 3, h, dh), float32 or bfloat16,
// its last three dimensions packed and its batch and position strides any, into q, k and v, each (b, l, h, dh)
// contiguous in qkv's type, q and k rotated on their first 2 * half channels by position: (x1, x2) ->
// (x1 cos - x2 sin, x1 sin + x2 cos) with cos, sin (l, half) float32. Each element is rounded once from float32
// where PyTorch's bf16 form rounds after each product and sum. One pass, where PyTorch makes about ten forward
// and ten backward, one per product, sum, slice and concatenation, each a pass over small strided tensors.
struct RotaryShape {
  int64_t b, l, h, dh, half;
};

static RotaryShape rotary_shape(const torch::Tensor& cos, const torch::Tensor& sin, int64_t b, int64_t l, int64_t h,
                                int64_t dh, const char* op) {
  TORCH_CHECK(cos.scalar_type() == at::kFloat && sin.scalar_type() == at::kFloat && cos.dim() == 2 &&
                  cos.sizes() == sin.sizes() && cos.size(0) == l && 2 * cos.size(1) <= dh,
              op, ": cos and sin must be float32 (l, half) with 2 * half <= head size");
  return {b, l, h, dh, cos.size(1)};
}

// out = rotate(in) by (cos, sin) over one head's channels, the rest copied; sign -1 rotates back (the gradient).
template <typename T>
static inline void rotate_head(T* __restrict out, const T* __restrict in, const float* __restrict c,
                               const float* __restrict s, int64_t half, int64_t dh, float sign) {
  for (int64_t j = 0; j < half; ++j) {
    const float x1 = static_cast<float>(in[j]), x2 = static_cast<float>(in[j + half]);
    const float sj = sign * s[j];
    out[j] = static_cast<T>(x1 * c[j] - x2 * sj);
    out[j + half] = static_cast<T>(x1 * sj + x2 * c[j]);
  }
  for (int64_t j = 2 * half; j < dh; ++j) out[j] = in[j];
}

std::vector<torch::Tensor> rotary_qkv_forward(torch::Tensor qkv, torch::Tensor cos, torch::Tensor sin) {
  TORCH_CHECK(qkv.dim() == 5 && qkv.size(2) == 3 && qkv.device().is_cpu(), "rotary_qkv: qkv must be (b, l, 3, h, dh) on CPU");
  if (qkv.stride(4) != 1 || qkv.stride(3) != qkv.size(4) || qkv.stride(2) != qkv.size(3) * qkv.size(4)) qkv = qkv.contiguous();
  cos = cos.contiguous(); sin = sin.contiguous();
  const RotaryShape s = rotary_shape(cos, sin, qkv.size(0), qkv.size(1), qkv.size(3), qkv.size(4), "rotary_qkv");
  const int64_t sb = qkv.stride(0), sl = qkv.stride(1), head = s.h * s.dh;
  auto q = torch::empty({s.b, s.l, s.h, s.dh}, qkv.options()), k = torch::empty_like(q), v = torch::empty_like(q);
  const float *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
  with_element_type(qkv, "rotary_qkv", [&](auto element) {
  using T = decltype(element);
  const T* in = qkv.data_ptr<T>();
  T *qp = q.data_ptr<T>(), *kp = k.data_ptr<T>(), *vp = v.data_ptr<T>();
  at::parallel_for(0, s.b * s.l, 64, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t pos = row % s.l;
      const T* src = in + (row / s.l) * sb + pos * sl;
      const float *c = cp + pos * s.half, *sn = sp + pos * s.half;
      for (int64_t i = 0; i < s.h; ++i) {
        rotate_head(qp + row * head + i * s.dh, src + i * s.dh, c, sn, s.half, s.dh, 1.f);
        rotate_head(kp + row * head + i * s.dh, src + head + i * s.dh, c, sn, s.half, s.dh, 1.f);
      }
      std::copy(src + 2 * head, src + 3 * head, vp + row * head);
    }
  });
  });
  return {q, k, v};
}

// d qkv (b, l, 3, h, dh), contiguous in dq's type, from the gradients of q, k and v (b, l, h, dh), each with unit
// channel stride and any other strides (SDPA's gradients arrive head-major): q's and k's rotated back.
torch::Tensor rotary_qkv_backward(torch::Tensor dq, torch::Tensor dk, torch::Tensor dv, torch::Tensor cos,
                                  torch::Tensor sin) {
  TORCH_CHECK(dq.dim() == 4 && dq.sizes() == dk.sizes() && dq.sizes() == dv.sizes() &&
                  dq.scalar_type() == dk.scalar_type() && dq.scalar_type() == dv.scalar_type(),
              "rotary_qkv_backward: dq, dk and dv must be (b, l, h, dh) of one type");
  dq = unit_last_stride(dq, 4, "rotary_qkv_backward"); dk = unit_last_stride(dk, 4, "rotary_qkv_backward");
  dv = unit_last_stride(dv, 4, "rotary_qkv_backward"); cos = cos.contiguous(); sin = sin.contiguous();
  const RotaryShape s = rotary_shape(cos, sin, dq.size(0), dq.size(1), dq.size(2), dq.size(3), "rotary_qkv_backward");
  const int64_t head = s.h * s.dh;
  auto dqkv = torch::empty({s.b, s.l, 3, s.h, s.dh}, dq.options());
  const auto sq = dq.strides(), sk = dk.strides(), sv = dv.strides();
  const float *cp = cos.data_ptr<float>(), *sp = sin.data_ptr<float>();
  with_element_type(dq, "rotary_qkv_backward", [&](auto element) {
  using T = decltype(element);
  const T *gq = dq.data_ptr<T>(), *gk = dk.data_ptr<T>(), *gv = dv.data_ptr<T>();
  T* out = dqkv.data_ptr<T>();
  at::parallel_for(0, s.b * s.l, 64, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t bi = row / s.l, pos = row % s.l;
      const float *c = cp + pos * s.half, *sn = sp + pos * s.half;
      T* dst = out + row * 3 * head;
      for (int64_t i = 0; i < s.h; ++i) {
        rotate_head(dst + i * s.dh, gq + bi * sq[0] + pos * sq[1] + i * sq[2], c, sn, s.half, s.dh, -1.f);
        rotate_head(dst + head + i * s.dh, gk + bi * sk[0] + pos * sk[1] + i * sk[2], c, sn, s.half, s.dh, -1.f);
        const T* vi = gv + bi * sv[0] + pos * sv[1] + i * sv[2];
        std::copy(vi, vi + s.dh, dst + 2 * head + i * s.dh);
      }
    }
  });
  });
  return dqkv;
}

// The routing module's cosine similarity of adjacent positions: qk (b, l, 2d) float32 holds q then k per position
// (one projection of the hidden states; unit channel stride, any batch and position strides); out (b, l - 1)
// float32 is cos(q_{t-1}, k_t) for t = 1..l-1, with each vector scaled by 1 / max(|v|, eps) as F.normalize
// scales it. One pass per pair of rows, where PyTorch makes eight over (b, l, d) forward and more backward.
torch::Tensor adjacent_cosine_forward(torch::Tensor qk, double eps) {
  check_inputs("adjacent_cosine", {qk});
  qk = unit_last_stride(qk, 3, "adjacent_cosine");
  const int64_t b = qk.size(0), l = qk.size(1), d = qk.size(2) / 2, sb = qk.stride(0), sl = qk.stride(1);
  TORCH_CHECK(qk.size(2) == 2 * d && d % W == 0 && l >= 1, "adjacent_cosine kernel: the channels must be whole vectors");
  auto out = torch::empty({b, l - 1}, qk.options());
  const float* p = qk.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const float e = static_cast<float>(eps);
  at::parallel_for(0, b * (l - 1), 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t bi = i / (l - 1), t = i % (l - 1) + 1;
      const float *q = p + bi * sb + (t - 1) * sl, *k = p + bi * sb + t * sl + d;
      Vec dot(0.f), qq(0.f), kk(0.f);
      for (int64_t c = 0; c < d; c += W) {
        const Vec qc = Vec::loadu(q + c), kc = Vec::loadu(k + c);
        dot = at::vec::fmadd(qc, kc, dot); qq = at::vec::fmadd(qc, qc, qq); kk = at::vec::fmadd(kc, kc, kk);
      }
      op[i] = sum_of(dot) / (std::max(std::sqrt(sum_of(qq)), e) * std::max(std::sqrt(sum_of(kk)), e));
    }
  });
  return out;
}

// d qk (b, l, 2d) given dout (b, l - 1): for q_{t-1}, dout (k^ - c q^) / |q|, or dout k^ / eps where |q| <= eps
// (F.normalize's clamp passes no gradient to the norm); likewise for k_t. q of the last position and k of the
// first get zeros.
torch::Tensor adjacent_cosine_backward(torch::Tensor dout, torch::Tensor qk, double eps) {
  check_inputs("adjacent_cosine_backward", {qk, dout});
  qk = unit_last_stride(qk, 3, "adjacent_cosine_backward"); dout = dout.contiguous();
  const int64_t b = qk.size(0), l = qk.size(1), d = qk.size(2) / 2, sb = qk.stride(0), sl = qk.stride(1);
  TORCH_CHECK(dout.dim() == 2 && dout.size(0) == b && dout.size(1) == l - 1, "adjacent_cosine_backward: dout must be (b, l - 1)");
  auto dqk = torch::empty({b, l, 2 * d}, qk.options());
  const float *p = qk.data_ptr<float>(), *gp = dout.data_ptr<float>();
  float* dp = dqk.data_ptr<float>();
  const float e = static_cast<float>(eps);
  at::parallel_for(0, b * l, 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t bi = i / l, t = i % l;
      float* row = dp + i * 2 * d;
      // q of position t pairs with k of t + 1 (none for the last); k of t with q of t - 1 (none for the first).
      for (int part = 0; part < 2; ++part) {
        const int64_t other_t = part == 0 ? t + 1 : t - 1;
        float* dst = row + part * d;
        if (other_t < 0 || other_t >= l) {
          for (int64_t c = 0; c < d; ++c) dst[c] = 0.f;
          continue;
        }
        const float *v = p + bi * sb + t * sl + part * d, *w = p + bi * sb + other_t * sl + (1 - part) * d;
        Vec dot(0.f), vv(0.f), ww(0.f);
        for (int64_t c = 0; c < d; c += W) {
          const Vec vc = Vec::loadu(v + c), wc = Vec::loadu(w + c);
          dot = at::vec::fmadd(vc, wc, dot); vv = at::vec::fmadd(vc, vc, vv); ww = at::vec::fmadd(wc, wc, ww);
        }
        const float nv = std::sqrt(sum_of(vv)), nw = std::max(std::sqrt(sum_of(ww)), e);
        const float g = gp[bi * (l - 1) + (part == 0 ? t : t - 1)];
        const float sv = std::max(nv, e), cosine = sum_of(dot) / (sv * nw);
        const Vec along(g / (sv * nw)), back(nv > e ? g * cosine / (sv * sv) : 0.f);
        for (int64_t c = 0; c < d; c += W) (along * Vec::loadu(w + c) - back * Vec::loadu(v + c)).store(dst + c);
      }
    }
  });
  return dqk;
}

// The Transformer MLP's gate: h (rows, 2w) = (value, gate) side by side, float32 or bfloat16 (fc1's output under
// autocast), unit channel stride and any row stride; out (rows, w) = value * silu(gate) in h's type, computed in
// float32 and rounded once. Its backward writes d h whole (no concatenation of the halves' gradients).
torch::Tensor swiglu_forward(torch::Tensor h) {
  TORCH_CHECK(h.device().is_cpu(), "swiglu: CPU tensors only");
  h = unit_last_stride(h, 2, "swiglu");
  const int64_t rows = h.size(0), w = h.size(1) / 2, sh = h.stride(0);
  TORCH_CHECK(h.size(1) == 2 * w && w % W == 0, "swiglu kernel: the halves must be whole vectors");
  auto out = torch::empty({rows, w}, h.options().memory_format(at::MemoryFormat::Contiguous));
  with_element_type(h, "swiglu", [&](auto element) {
  using T = decltype(element);
  const T* hp = h.data_ptr<T>();
  T* op = out.data_ptr<T>();
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T* hi = hp + i * sh;
      for (int64_t c = 0; c < w; c += W) {
        const Vec g = load_f(hi + w + c);
        store_f(load_f(hi + c) * g * sigmoid_of(g), op + i * w + c);
      }
    }
  });
  });
  return out;
}

// d h (rows, 2w) in dout's type: d value = dout silu(gate), d gate = dout value sigmoid(gate) (1 + gate (1 - sigmoid)).
torch::Tensor swiglu_backward(torch::Tensor dout, torch::Tensor h) {
  h = unit_last_stride(h, 2, "swiglu_backward"); dout = dout.contiguous();
  const int64_t rows = h.size(0), w = h.size(1) / 2, sh = h.stride(0);
  TORCH_CHECK(dout.dim() == 2 && dout.size(0) == rows && dout.size(1) == w && dout.scalar_type() == h.scalar_type(),
              "swiglu_backward: dout must be (rows, w) of h's type");
  auto dh = torch::empty({rows, 2 * w}, h.options().memory_format(at::MemoryFormat::Contiguous));
  with_element_type(h, "swiglu_backward", [&](auto element) {
  using T = decltype(element);
  const T *hp = h.data_ptr<T>(), *gp = dout.data_ptr<T>();
  T* dp = dh.data_ptr<T>();
  at::parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T* hi = hp + i * sh;
      for (int64_t c = 0; c < w; c += W) {
        const Vec v = load_f(hi + c), g = load_f(hi + w + c), d = load_f(gp + i * w + c), sg = sigmoid_of(g);
        store_f(d * g * sg, dp + i * 2 * w + c);
        store_f(d * v * sg * (Vec(1.f) + g * (Vec(1.f) - sg)), dp + i * 2 * w + w + c);
      }
    }
  });
  });
  return dh;
}

TORCH_LIBRARY(dnahnet_cpu, m) {
  m.def("chunk_states(Tensor B, Tensor A, Tensor x, Tensor dt) -> Tensor");
  m.def("chunk_states_backward(Tensor dstates, Tensor B, Tensor A, Tensor x, Tensor dt) -> Tensor[]");
  m.def("chunk_output(Tensor C, Tensor B, Tensor A, Tensor x, Tensor dt, Tensor carried) -> Tensor");
  m.def("chunk_output_backward(Tensor dy, Tensor C, Tensor B, Tensor A, Tensor x, Tensor dt, Tensor carried) -> Tensor[]");
  m.def("scan(Tensor C, Tensor B, Tensor A, Tensor x, Tensor dt, Tensor initial) -> (Tensor, Tensor)");
  m.def("scan_backward(Tensor dy, Tensor? dpassed, Tensor C, Tensor B, Tensor A, Tensor x, Tensor dt, Tensor passed) -> Tensor[]");
  m.def("gated_norm(Tensor y, Tensor x, Tensor D, Tensor z, Tensor weight, int group, float eps) -> Tensor");
  m.def("gated_norm_backward(Tensor dout, Tensor y, Tensor x, Tensor D, Tensor z, Tensor weight, int group, float eps) -> Tensor[]");
  m.def("rms_norm(Tensor x, Tensor weight, float eps, bool bf16_out) -> Tensor");
  m.def("rms_norm_backward(Tensor dout, Tensor x, Tensor weight, float eps) -> Tensor[]");
  m.def("conv_silu(Tensor x, Tensor weight, Tensor bias) -> Tensor");
  m.def("conv_silu_backward(Tensor dout, Tensor x, Tensor weight, Tensor bias) -> Tensor[]");
  m.def("rotary_qkv(Tensor qkv, Tensor cos, Tensor sin) -> Tensor[]");
  m.def("rotary_qkv_backward(Tensor dq, Tensor dk, Tensor dv, Tensor cos, Tensor sin) -> Tensor");
  m.def("adjacent_cosine(Tensor qk, float eps) -> Tensor");
  m.def("adjacent_cosine_backward(Tensor dout, Tensor qk, float eps) -> Tensor");
  m.def("swiglu(Tensor h) -> Tensor");
  m.def("swiglu_backward(Tensor dout, Tensor h) -> Tensor");
}
TORCH_LIBRARY_IMPL(dnahnet_cpu, CPU, m) {
  m.impl("chunk_states", &chunk_states_forward);
  m.impl("chunk_states_backward", &chunk_states_backward);
  m.impl("chunk_output", &chunk_output_forward);
  m.impl("chunk_output_backward", &chunk_output_backward);
  m.impl("scan", &scan_forward);
  m.impl("scan_backward", &scan_backward);
  m.impl("gated_norm", &gated_norm_forward);
  m.impl("gated_norm_backward", &gated_norm_backward);
  m.impl("rms_norm", &rms_norm_forward);
  m.impl("rms_norm_backward", &rms_norm_backward);
  m.impl("conv_silu", &conv_silu_forward);
  m.impl("conv_silu_backward", &conv_silu_backward);
  m.impl("rotary_qkv", &rotary_qkv_forward);
  m.impl("rotary_qkv_backward", &rotary_qkv_backward);
  m.impl("adjacent_cosine", &adjacent_cosine_forward);
  m.impl("adjacent_cosine_backward", &adjacent_cosine_backward);
  m.impl("swiglu", &swiglu_forward);
  m.impl("swiglu_backward", &swiglu_backward);
}
