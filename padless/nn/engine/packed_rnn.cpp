// padless packed recurrent engine (CPU).
//
// Owns: the compiled forward and backward passes of one LSTM / GRU / tanh-RNN layer and direction
// over a whole ragged batch in PackedSequence layout (time-major, shrinking batch). Forward: every input
// projection as one GEMM, then per time step one GEMM on the active rows plus fused, vectorised gate
// math; what backward needs is saved in preallocated (S, ...) buffers. Backward: per step (reverse time)
// one GEMM plus fused elementwise work, then the weight gradients as single GEMMs over all positions.
//
// Rows are split across torch's intra-op threads (row r goes to thread r % P): rows are independent
// sequences, so a thread runs the whole time loop on its rows with no synchronisation at all; each step's
// GEMM is single-threaded inside its thread. The large GEMMs outside the time loop use BLAS's threading.
//
// Does not own: argument checking beyond what keeps memory safe, autograd wiring, engine selection and
// building (all in padless/nn/engine/*.py).

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#define CPU_CAPABILITY_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__)
#define CPU_CAPABILITY_AVX2 1
#endif
// A namespace of our own for the inline vector code, so it can never be confused with libtorch's copies.
#define CPU_CAPABILITY padless_vec

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#ifndef PADLESS_BLAS
#define PADLESS_BLAS 0
#endif
#ifndef PADLESS_MKL
#define PADLESS_MKL 0
#endif
#ifndef PADLESS_NS
#define PADLESS_NS padless_engine
#endif

#if PADLESS_BLAS
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
            const int*, const float*, const int*, const float*, float*, const int*);
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*,
            const int*, const double*, const int*, const double*, double*, const int*);
}
#endif
#if PADLESS_MKL
extern "C" int MKL_Set_Num_Threads_Local(int);  // the C entry point (the lowercase one is Fortran)
#endif

namespace {

using at::vec::Vectorized;

enum Mode : int64_t { kLSTM = 0, kGRU = 1, kTanh = 2 };

inline int64_t gates_of(int64_t mode) { return mode == kLSTM ? 4 : (mode == kGRU ? 3 : 1); }

// ------------------------------------------------------------------------------------------- GEMM
// Row-major C (m x n, ldc) = alpha * op(A) (m x k) @ op(B) (k x n) + beta * C. With BLAS it is one
// xgemm_ call (no dispatcher, no allocation); without, ATen's mm on views.
template <typename T>
void gemm_rm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* A, int64_t lda,
             const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
#if PADLESS_BLAS
  const int im = (int)m, in = (int)n, ik = (int)k, ia = (int)lda, ib = (int)ldb, ic = (int)ldc;
  const char* tA = ta ? "T" : "N";
  const char* tB = tb ? "T" : "N";
  if constexpr (std::is_same_v<T, float>) {
    sgemm_(tB, tA, &in, &im, &ik, &alpha, B, &ib, A, &ia, &beta, C, &ic);
  } else {
    dgemm_(tB, tA, &in, &im, &ik, &alpha, B, &ib, A, &ia, &beta, C, &ic);
  }
#else
  auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  at::Tensor a = ta ? at::from_blob(const_cast<T*>(A), {k, m}, {lda, 1}, opts).t()
                    : at::from_blob(const_cast<T*>(A), {m, k}, {lda, 1}, opts);
  at::Tensor b = tb ? at::from_blob(const_cast<T*>(B), {n, k}, {ldb, 1}, opts).t()
                    : at::from_blob(const_cast<T*>(B), {k, n}, {ldb, 1}, opts);
  at::Tensor c = at::from_blob(C, {m, n}, {ldc, 1}, opts);
  if (beta == T(0)) {
    c.copy_(at::mm(a, b));
    if (alpha != T(1)) c.mul_(alpha);
  } else {
    c.copy_(at::addmm(c, a, b, beta, alpha));
  }
#endif
}

// Inside a worker: BLAS must stay single-threaded (the rows are already split across threads).
struct SingleThreadedBlas {
#if PADLESS_MKL
  int prev;
  SingleThreadedBlas() : prev(MKL_Set_Num_Threads_Local(1)) {}
  ~SingleThreadedBlas() { MKL_Set_Num_Threads_Local(prev); }
#endif
};

// Run f(k) for k in [0, P) on torch's intra-op threads (one k per thread when the team is large enough).
template <typename F>
void run_workers(int64_t P, const F& f) {
  if (P <= 1) {
    SingleThreadedBlas guard;
    f(0);
    return;
  }
  at::parallel_for(0, P, 1, [&](int64_t b, int64_t e) {
    SingleThreadedBlas guard;
    for (int64_t k = b; k < e; ++k) f(k);
  });
}

// ------------------------------------------------------------------------------------------- layout
struct Layout {
  int64_t T = 0, B = 0, S = 0;
  std::vector<int64_t> bs;   // (T + 1,) rows active at t; bs[T] = 0
  std::vector<int64_t> off;  // (T + 1,) first position of step t; off[T] = S
};

Layout make_layout(const at::Tensor& batch_sizes, int64_t S) {
  TORCH_CHECK(batch_sizes.device().is_cpu() && batch_sizes.scalar_type() == at::kLong && batch_sizes.dim() == 1,
              "padless: batch_sizes must be a 1-D int64 CPU tensor");
  at::Tensor b = batch_sizes.contiguous();
  const int64_t* p = b.data_ptr<int64_t>();
  Layout L;
  L.T = b.numel();
  TORCH_CHECK(L.T > 0, "padless: batch_sizes is empty");
  L.bs.resize(L.T + 1);
  L.off.resize(L.T + 1);
  int64_t acc = 0;
  for (int64_t t = 0; t < L.T; ++t) {
    TORCH_CHECK(p[t] > 0, "padless: batch_sizes[", t, "] = ", p[t], " is not positive");
    TORCH_CHECK(t == 0 || p[t] <= p[t - 1], "padless: batch_sizes must be non-increasing; batch_sizes[", t,
                "] = ", p[t], " > batch_sizes[", t - 1, "] = ", p[t - 1]);
    L.bs[t] = p[t];
    L.off[t] = acc;
    acc += p[t];
  }
  L.bs[L.T] = 0;
  L.off[L.T] = acc;
  L.B = p[0];
  L.S = acc;
  TORCH_CHECK(acc == S, "padless: batch_sizes sum to ", acc, " but x has ", S, " rows");
  return L;
}

// Rows of thread k among the first n rows (rows k, k + P, k + 2P, ...).
inline int64_t rows_of(int64_t n, int64_t k, int64_t P) { return n > k ? (n - 1 - k) / P + 1 : 0; }

// Below this many multiply-adds of recurrent work (S * GH * H) a second thread costs more than it saves.
double g_min_parallel_work = 1e5;
// Inference: gates of about this many bytes per chunk of time steps (bounded memory, reused buffer).
double g_chunk_bytes = 1 << 20;

int64_t choose_workers(int64_t B, int64_t S, int64_t GH, int64_t H) {
  int64_t P = std::min<int64_t>(at::get_num_threads(), B);
  if (at::in_parallel_region()) P = 1;
  if ((double)S * (double)GH * (double)H < g_min_parallel_work) P = 1;
  return std::max<int64_t>(P, 1);
}

// ------------------------------------------------------------------------------------------- vector math
// float: exp from Cephes' expf (about 1 ulp; range reduction in two steps, 2^n by vscalefps / exponent
// bits), sigmoid = 1 / (1 + exp(-x)), tanh = 1 - 2 / (1 + exp(2x)) (absolute error ~1e-7, like torch's
// within a few ulp). double: Sleef's exp (1 ulp) through Vectorized, same formulas.
template <typename T>
struct VecOps {
  using V = Vectorized<T>;
  static inline V exp(const V& x) { return x.exp(); }
  static inline V sigmoid(const V& x) { return V(T(1)) / (V(T(1)) + exp(x.neg())); }
  static inline V tanh(const V& x) { return V(T(1)) - V(T(2)) / (V(T(1)) + exp(x + x)); }
};

#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
template <>
struct VecOps<float> {
  using V = Vectorized<float>;
  static inline V exp(const V& x_) {
    V x = at::vec::minimum(at::vec::maximum(x_, V(-87.0f)), V(88.0f));
    V n = at::vec::fmadd(x, V(1.44269504088896341f), V(0.5f)).floor();
    x = at::vec::fnmadd(n, V(0.693359375f), x);
    x = at::vec::fnmadd(n, V(-2.12194440e-4f), x);
    V z = x * x;
    V y = at::vec::fmadd(V(1.9875691500e-4f), x, V(1.3981999507e-3f));
    y = at::vec::fmadd(y, x, V(8.3334519073e-3f));
    y = at::vec::fmadd(y, x, V(4.1665795894e-2f));
    y = at::vec::fmadd(y, x, V(1.6666665459e-1f));
    y = at::vec::fmadd(y, x, V(5.0000001201e-1f));
    y = at::vec::fmadd(y, z, x) + V(1.0f);
#if defined(CPU_CAPABILITY_AVX512)
    return V(_mm512_scalef_ps(y, n));
#else
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return V(_mm256_mul_ps(y, _mm256_castsi256_ps(e)));
#endif
  }
  static inline V sigmoid(const V& x) { return V(1.0f) / (V(1.0f) + exp(x.neg())); }
  static inline V tanh(const V& x) { return V(1.0f) - V(2.0f) / (V(1.0f) + exp(x + x)); }
};
#endif

// Calls body(std::true_type / std::false_type, j, n) over [0, H) in vector-sized pieces.
template <typename T, typename F>
inline void for_vec(int64_t H, const F& body) {
  constexpr int64_t VL = Vectorized<T>::size();
  int64_t j = 0;
  for (; j + VL <= H; j += VL) body(std::true_type{}, j, VL);
  if (j < H) body(std::false_type{}, j, H - j);
}

template <typename T, bool Full>
inline Vectorized<T> ld(const T* p, int64_t n) {
  if constexpr (Full) return Vectorized<T>::loadu(p);
  else return Vectorized<T>::loadu(p, n);
}
template <typename T, bool Full>
inline void st(const Vectorized<T>& v, T* p, int64_t n) {
  if constexpr (Full) v.store(p);
  else v.store(p, n);
}

// ------------------------------------------------------------------------------------------- small GEMM
// The per-step GEMMs: C (m x N) [+]= A (m x K, rows lda apart) @ W, with W packed once per call into
// panels of NR = NV vector widths: panel p is K x NR contiguous (zero columns past N). A register block of
// MR rows x NR columns accumulates over K with one broadcast of A per row and NV vector loads of W per k;
// panels are the outer loop so a panel stays in L1 across the row blocks. No call overhead, no packing
// per step, no allocation. C must have room for the padded columns (npanels * NR per row).
#if defined(CPU_CAPABILITY_AVX512)
template <int NV> constexpr int kMaxMR = 12;
#elif defined(CPU_CAPABILITY_AVX2)
template <int NV> constexpr int kMaxMR = NV == 1 ? 12 : 6;
#else
template <int NV> constexpr int kMaxMR = 4;
#endif

template <typename T, int MR, int NV, bool ACC>
inline void micro_kernel(int64_t K, const T* __restrict__ A, int64_t lda, const T* __restrict__ Bp,
                         T* __restrict__ C, int64_t ldc) {
  using V = Vectorized<T>;
  constexpr int VL = V::size();
  constexpr int NR = NV * VL;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = V(T(0));
  for (int64_t k = 0; k < K; ++k) {
    V b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = V::loadu(Bp + k * NR + v * VL);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V a(A[i * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = at::vec::fmadd(a, b[v], acc[i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      T* c = C + i * ldc + v * VL;
      if constexpr (ACC) (acc[i][v] + V::loadu(c)).store(c);
      else acc[i][v].store(c);
    }
}

template <typename T, int NV, bool ACC, int MR = kMaxMR<NV>>
inline void micro_dispatch(int mr, int64_t K, const T* A, int64_t lda, const T* Bp, T* C, int64_t ldc) {
  if constexpr (MR > 0) {
    if (mr == MR) return micro_kernel<T, MR, NV, ACC>(K, A, lda, Bp, C, ldc);
    return micro_dispatch<T, NV, ACC, MR - 1>(mr, K, A, lda, Bp, C, ldc);
  }
}

struct Packed {
  int64_t nv = 1, nr = 0, panels = 0, K = 0, N = 0;
  int64_t padded() const { return panels * nr; }
};

// Panel width: the one (1 or 2 vectors) that pads N least; 2 on a tie.
template <typename T>
Packed plan_pack(int64_t K, int64_t N) {
  constexpr int64_t VL = Vectorized<T>::size();
  Packed p;
  p.K = K;
  p.N = N;
  const int64_t pad1 = (N + VL - 1) / VL * VL, pad2 = (N + 2 * VL - 1) / (2 * VL) * (2 * VL);
  p.nv = pad2 <= pad1 ? 2 : 1;
  p.nr = p.nv * VL;
  p.panels = (N + p.nr - 1) / p.nr;
  return p;
}

// Pack W (N x K row-major, used transposed: C = A @ W^T) or W (K x N row-major, used as is).
template <typename T>
at::Tensor pack_weight(const Packed& p, const T* W, bool transposed, const at::TensorOptions& opts) {
  at::Tensor out = at::zeros({p.panels, p.K, p.nr}, opts);
  T* o = out.data_ptr<T>();
  at::parallel_for(0, p.panels, 1, [&](int64_t b, int64_t e) {
    for (int64_t q = b; q < e; ++q) {
      T* dst = o + q * p.K * p.nr;
      const int64_t c0 = q * p.nr, cols = std::min(p.nr, p.N - c0);
      if (transposed) {
        for (int64_t c = 0; c < cols; ++c) {
          const T* src = W + (c0 + c) * p.K;
          for (int64_t k = 0; k < p.K; ++k) dst[k * p.nr + c] = src[k];
        }
      } else {
        for (int64_t k = 0; k < p.K; ++k) std::memcpy(dst + k * p.nr, W + k * p.N + c0, sizeof(T) * cols);
      }
    }
  });
  return out;
}

// C (m rows, ldc) [+]= A (m x K, lda) @ packed W. Row blocks are balanced (e.g. 14 rows -> 7 + 7).
template <typename T, bool ACC>
void gemm_small(const Packed& p, int64_t m, const T* A, int64_t lda, const T* Bp, T* C, int64_t ldc) {
  if (m <= 0) return;
  auto run = [&](auto nv_tag) {
    constexpr int NV = decltype(nv_tag)::value;
    constexpr int MRX = kMaxMR<NV>;
    constexpr int64_t NR = NV * Vectorized<T>::size();
    const int64_t blocks = (m + MRX - 1) / MRX;
    for (int64_t q = 0; q < p.panels; ++q) {
      const T* bp = Bp + q * p.K * NR;
      int64_t i = 0;
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int mr = (int)((m - i + (blocks - blk) - 1) / (blocks - blk));
        micro_dispatch<T, NV, ACC>(mr, p.K, A + i * lda, lda, bp, C + i * ldc + q * NR, ldc);
        i += mr;
      }
    }
  };
  if (p.nv == 2) run(std::integral_constant<int, 2>{});
  else run(std::integral_constant<int, 1>{});
}

// ------------------------------------------------------------------------------------------- forward rows
// LSTM, one row: g holds the input projection (4H, gates i f g o) and receives the activations when
// save; s is the recurrent projection (4H) or null (zero state); cp the previous cell state or null.
template <typename T>
inline void lstm_fwd_row(int64_t H, T* g, const T* s, const T* bias, const T* cp, T* c_out, T* h_out,
                         T* hn, T* cn, bool save) {
  using O = VecOps<T>;
  using V = Vectorized<T>;
  for_vec<T>(H, [&](auto full, int64_t j, int64_t n) {
    constexpr bool F = decltype(full)::value;
    V zi = ld<T, F>(g + j, n) + ld<T, F>(bias + j, n);
    V zf = ld<T, F>(g + H + j, n) + ld<T, F>(bias + H + j, n);
    V zg = ld<T, F>(g + 2 * H + j, n) + ld<T, F>(bias + 2 * H + j, n);
    V zo = ld<T, F>(g + 3 * H + j, n) + ld<T, F>(bias + 3 * H + j, n);
    if (s) {
      zi = zi + ld<T, F>(s + j, n);
      zf = zf + ld<T, F>(s + H + j, n);
      zg = zg + ld<T, F>(s + 2 * H + j, n);
      zo = zo + ld<T, F>(s + 3 * H + j, n);
    }
    V i = O::sigmoid(zi), f = O::sigmoid(zf), gg = O::tanh(zg), o = O::sigmoid(zo);
    V c = i * gg;
    if (cp) c = at::vec::fmadd(f, ld<T, F>(cp + j, n), c);
    V h = o * O::tanh(c);
    st<T, F>(c, c_out + j, n);
    st<T, F>(h, h_out + j, n);
    if (hn) {
      st<T, F>(h, hn + j, n);
      st<T, F>(c, cn + j, n);
    }
    if (save) {
      st<T, F>(i, g + j, n);
      st<T, F>(f, g + H + j, n);
      st<T, F>(gg, g + 2 * H + j, n);
      st<T, F>(o, g + 3 * H + j, n);
    }
  });
}

// GRU, one row: g holds the input projection (gates r z n) in its first 3H and, when save, receives
// [r, z, n, W_hn h + b_hn] (4H). s = recurrent projection (3H, no bias) or null; hp = previous h or null.
template <typename T>
inline void gru_fwd_row(int64_t H, T* g, const T* s, const T* bias, const T* bhn, const T* hp, T* h_out,
                        T* hn, bool save) {
  using O = VecOps<T>;
  using V = Vectorized<T>;
  for_vec<T>(H, [&](auto full, int64_t j, int64_t n) {
    constexpr bool F = decltype(full)::value;
    V zr = ld<T, F>(g + j, n) + ld<T, F>(bias + j, n);
    V zz = ld<T, F>(g + H + j, n) + ld<T, F>(bias + H + j, n);
    V xn = ld<T, F>(g + 2 * H + j, n) + ld<T, F>(bias + 2 * H + j, n);
    V ghn = ld<T, F>(bhn + j, n);
    if (s) {
      zr = zr + ld<T, F>(s + j, n);
      zz = zz + ld<T, F>(s + H + j, n);
      ghn = ghn + ld<T, F>(s + 2 * H + j, n);
    }
    V r = O::sigmoid(zr), z = O::sigmoid(zz);
    V nn = O::tanh(at::vec::fmadd(r, ghn, xn));
    V h = hp ? at::vec::fmadd(z, ld<T, F>(hp + j, n) - nn, nn) : nn - z * nn;
    st<T, F>(h, h_out + j, n);
    if (hn) st<T, F>(h, hn + j, n);
    if (save) {
      st<T, F>(r, g + j, n);
      st<T, F>(z, g + H + j, n);
      st<T, F>(nn, g + 2 * H + j, n);
      st<T, F>(ghn, g + 3 * H + j, n);
    }
  });
}

template <typename T>
inline void tanh_fwd_row(int64_t H, const T* g, const T* s, const T* bias, T* h_out, T* hn) {
  using V = Vectorized<T>;
  for_vec<T>(H, [&](auto full, int64_t j, int64_t n) {
    constexpr bool F = decltype(full)::value;
    V z = ld<T, F>(g + j, n) + ld<T, F>(bias + j, n);
    if (s) z = z + ld<T, F>(s + j, n);
    V h = z.tanh();
    st<T, F>(h, h_out + j, n);
    if (hn) st<T, F>(h, hn + j, n);
  });
}

// ------------------------------------------------------------------------------------------- backward rows
// LSTM: a = activations (4H), c = this step's cell state, cp = previous (or null), dh_in / dc_in = incoming
// gradients (dc_in may be null = 0); writes dG (4H) and the cell gradient flowing back (dcc = dc * f).
template <typename T>
inline void lstm_bwd_row(int64_t H, const T* a, const T* c, const T* cp, const T* dy, const T* dh_in,
                         const T* dc_in, T* dg, T* dcc) {
  using O = VecOps<T>;
  using V = Vectorized<T>;
  const V one(T(1));
  for_vec<T>(H, [&](auto full, int64_t j, int64_t n) {
    constexpr bool F = decltype(full)::value;
    V i = ld<T, F>(a + j, n), f = ld<T, F>(a + H + j, n), gg = ld<T, F>(a + 2 * H + j, n),
      o = ld<T, F>(a + 3 * H + j, n);
    V dh = ld<T, F>(dy + j, n);
    if (dh_in) dh = dh + ld<T, F>(dh_in + j, n);
    V tc = O::tanh(ld<T, F>(c + j, n));
    V dc = dh * o * (one - tc * tc);
    if (dc_in) dc = dc + ld<T, F>(dc_in + j, n);
    V d_o = dh * tc * o * (one - o);
    V d_i = dc * gg * i * (one - i);
    V d_g = dc * i * (one - gg * gg);
    V d_f = cp ? dc * ld<T, F>(cp + j, n) * f * (one - f) : V(T(0));
    st<T, F>(d_i, dg + j, n);
    st<T, F>(d_f, dg + H + j, n);
    st<T, F>(d_g, dg + 2 * H + j, n);
    st<T, F>(d_o, dg + 3 * H + j, n);
    st<T, F>(dc * f, dcc + j, n);
  });
}

// GRU: a = [r, z, n, ghn] (4H), hp = previous h (or null); writes dG = [dn_pre, dr_pre, dz_pre, dghn]
// (4H: the input-side n gradient first, then the three recurrent-side gate gradients in W_hh order) and
// the direct gradient to the previous h (dh * z) into dh_out.
template <typename T>
inline void gru_bwd_row(int64_t H, const T* a, const T* hp, const T* dy, const T* dh_in, T* dg, T* dh_out) {
  using V = Vectorized<T>;
  const V one(T(1));
  for_vec<T>(H, [&](auto full, int64_t j, int64_t n) {
    constexpr bool F = decltype(full)::value;
    V r = ld<T, F>(a + j, n), z = ld<T, F>(a + H + j, n), nn = ld<T, F>(a + 2 * H + j, n),
      ghn = ld<T, F>(a + 3 * H + j, n);
    V dh = ld<T, F>(dy + j, n);
    if (dh_in) dh = dh + ld<T, F>(dh_in + j, n);
    V h_prev = hp ? ld<T, F>(hp + j, n) : V(T(0));
    V dn_pre = dh * (one - z) * (one - nn * nn);
    V dz_pre = dh * (h_prev - nn) * z * (one - z);
    V dr_pre = dn_pre * ghn * r * (one - r);
    st<T, F>(dn_pre, dg + j, n);
    st<T, F>(dr_pre, dg + H + j, n);
    st<T, F>(dz_pre, dg + 2 * H + j, n);
    st<T, F>(dn_pre * r, dg + 3 * H + j, n);
    st<T, F>(dh * z, dh_out + j, n);
  });
}

template <typename T>
inline void tanh_bwd_row(int64_t H, const T* h, const T* dy, const T* dh_in, T* dg) {
  using V = Vectorized<T>;
  const V one(T(1));
  for_vec<T>(H, [&](auto full, int64_t j, int64_t n) {
    constexpr bool F = decltype(full)::value;
    V dh = ld<T, F>(dy + j, n);
    if (dh_in) dh = dh + ld<T, F>(dh_in + j, n);
    V hv = ld<T, F>(h + j, n);
    st<T, F>(dh * (one - hv * hv), dg + j, n);
  });
}

// ------------------------------------------------------------------------------------------- forward
template <typename T>
std::vector<at::Tensor> forward_impl(int64_t mode, const at::Tensor& x, const Layout& L, const at::Tensor& w_ih,
                                     const at::Tensor& w_hh, const at::Tensor& bias_x, const at::Tensor& bias_hn,
                                     const at::Tensor& h0, const at::Tensor& c0, const at::Tensor& reset,
                                     bool need_grad) {
  const int64_t S = L.S, B = L.B, T_ = L.T;
  const int64_t F = x.size(1), H = w_hh.size(1), G = gates_of(mode), GH = G * H;
  const int64_t SW = need_grad && mode == kGRU ? 4 * H : GH;  // width of the gate / save buffer
  auto opts = x.options();
  at::Tensor y = at::empty({S, H}, opts);
  at::Tensor hn = at::empty({B, H}, opts);
  at::Tensor cn = mode == kLSTM ? at::empty({B, H}, opts) : at::Tensor();
  at::Tensor Cs;  // LSTM cell state: (S, H) per position when training, else (B, H) per row
  if (mode == kLSTM) Cs = need_grad ? at::empty({S, H}, opts) : at::empty({B, H}, opts);

  // Time chunks: training keeps every step's gates (one input GEMM for all S positions); inference
  // reuses a bounded buffer (about 1 MiB of gates per chunk, never less than one step).
  std::vector<int64_t> chunk_t{0};
  if (need_grad) {
    chunk_t.push_back(T_);
  } else {
    const int64_t target = std::max<int64_t>(B, (int64_t)(g_chunk_bytes / (sizeof(T) * std::max<int64_t>(GH, 1))));
    int64_t t = 0;
    while (t < T_) {
      int64_t t1 = t, rows = 0;
      while (t1 < T_ && (rows == 0 || rows + L.bs[t1] <= target)) rows += L.bs[t1++];
      chunk_t.push_back(t1);
      t = t1;
    }
  }
  int64_t max_chunk_rows = 0;
  for (size_t c = 0; c + 1 < chunk_t.size(); ++c)
    max_chunk_rows = std::max(max_chunk_rows, L.off[chunk_t[c + 1]] - L.off[chunk_t[c]]);
  at::Tensor Gbuf = at::empty({max_chunk_rows, SW}, opts);

  const int64_t P = choose_workers(B, S, GH, H);
  const int64_t maxm = std::max<int64_t>(rows_of(B, 0, P), 1);
  const Packed pk = plan_pack<T>(H, GH);  // W_hh^T, packed once per call
  const int64_t GHp = pk.padded();
  at::Tensor Wpk = pack_weight<T>(pk, w_hh.data_ptr<T>(), true, opts);
  at::Tensor scratch = at::empty({P, maxm, GHp}, opts);

  const T* xp = x.data_ptr<T>();
  const T* wih = w_ih.data_ptr<T>();
  const T* wpk = Wpk.data_ptr<T>();
  const T* bx = bias_x.data_ptr<T>();
  const T* bhn = bias_hn.defined() ? bias_hn.data_ptr<T>() : nullptr;
  const T* h0p = h0.defined() ? h0.data_ptr<T>() : nullptr;
  const T* c0p = c0.defined() ? c0.data_ptr<T>() : nullptr;
  const bool* rp = reset.defined() ? reset.data_ptr<bool>() : nullptr;
  T* yp = y.data_ptr<T>();
  T* hnp = hn.data_ptr<T>();
  T* cnp = cn.defined() ? cn.data_ptr<T>() : nullptr;
  T* Cp = Cs.defined() ? Cs.data_ptr<T>() : nullptr;
  T* Gp = Gbuf.data_ptr<T>();
  T* scr = scratch.data_ptr<T>();

  if (mode == kLSTM && !need_grad) {  // per-row running cell state
    if (c0p) std::memcpy(Cp, c0p, sizeof(T) * B * H);
  }

  for (size_t c = 0; c + 1 < chunk_t.size(); ++c) {
    const int64_t t0 = chunk_t[c], t1 = chunk_t[c + 1];
    const int64_t base = L.off[t0], rows = L.off[t1] - base;
    // all input projections of the chunk: one GEMM (biases are added in the gate math)
    gemm_rm<T>(false, true, rows, GH, F, T(1), xp + base * F, F, wih, F, T(0), Gp, SW);

    run_workers(P, [&](int64_t k) {
      T* gh = scr + k * maxm * GHp;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t bs = L.bs[t];
        const int64_t m = rows_of(bs, k, P);
        if (m == 0) break;
        // previous hidden state of my rows: block t-1 of y (its first bs rows), or h0
        const T* A = t > 0 ? yp + (L.off[t - 1] + k) * H : (h0p ? h0p + k * H : nullptr);
        if (A) gemm_small<T, false>(pk, m, A, P * H, wpk, gh, GHp);
        const int64_t next_bs = L.bs[t + 1];
        for (int64_t i = 0; i < m; ++i) {
          const int64_t r = k + i * P;
          const int64_t pos = L.off[t] + r;
          const bool rst = rp && rp[pos];
          const bool has_prev = !rst && A != nullptr;
          const T* s = has_prev ? gh + i * GHp : nullptr;
          const bool ending = r >= next_bs;
          T* g = Gp + (pos - base) * SW;
          T* h_out = yp + pos * H;
          T* hnr = ending ? hnp + r * H : nullptr;
          if (mode == kLSTM) {
            const T* cp = nullptr;
            T* c_out;
            if (need_grad) {
              if (!rst) cp = t > 0 ? Cp + (L.off[t - 1] + r) * H : (c0p ? c0p + r * H : nullptr);
              c_out = Cp + pos * H;
            } else {
              if (!rst && (t > 0 || c0p)) cp = Cp + r * H;
              c_out = Cp + r * H;
            }
            lstm_fwd_row<T>(H, g, s, bx, cp, c_out, h_out, hnr, ending ? cnp + r * H : nullptr, need_grad);
          } else if (mode == kGRU) {
            const T* hp = has_prev ? A + i * P * H : nullptr;
            gru_fwd_row<T>(H, g, s, bx, bhn, hp, h_out, hnr, need_grad);
          } else {
            tanh_fwd_row<T>(H, g, s, bx, h_out, hnr);
          }
        }
      }
    });
  }
  std::vector<at::Tensor> out{y, hn};
  out.push_back(cn.defined() ? cn : at::empty({0}, opts));
  out.push_back(need_grad && mode != kTanh ? Gbuf : at::empty({0}, opts));
  out.push_back(need_grad && mode == kLSTM ? Cs : at::empty({0}, opts));
  return out;
}

// ------------------------------------------------------------------------------------------- backward
enum Need : int64_t { kNx = 1, kNwih = 2, kNwhh = 4, kNbih = 8, kNbhh = 16, kNh0 = 32, kNc0 = 64 };

template <typename T>
std::vector<at::Tensor> backward_impl(int64_t mode, const at::Tensor& x, const Layout& L, const at::Tensor& w_ih,
                                      const at::Tensor& w_hh, const at::Tensor& h0, const at::Tensor& c0,
                                      const at::Tensor& reset, const at::Tensor& y, const at::Tensor& Gsave,
                                      const at::Tensor& Cs, const at::Tensor& dy, const at::Tensor& dhn,
                                      const at::Tensor& dcn, int64_t needs) {
  const int64_t S = L.S, B = L.B, T_ = L.T;
  const int64_t F = x.size(1), H = w_hh.size(1), G = gates_of(mode), GH = G * H;
  const int64_t DW = mode == kGRU ? 4 * H : GH;  // dG width; the recurrent part is its last GH columns
  const int64_t hoff = DW - GH;
  auto opts = x.options();
  const bool need_h0 = (needs & kNh0) && h0.defined();
  const bool need_c0 = (needs & kNc0) && c0.defined() && mode == kLSTM;

  at::Tensor dG = at::empty({S, DW}, opts);
  const Packed pk = plan_pack<T>(GH, H);  // W_hh as is, packed once per call
  const int64_t Hp = pk.padded();         // row stride of dhrec (room for the padded columns)
  at::Tensor Wpk = pack_weight<T>(pk, w_hh.data_ptr<T>(), false, opts);
  at::Tensor dhrec = at::empty({B, Hp}, opts);
  at::Tensor dcc = mode == kLSTM ? at::empty({B, H}, opts) : at::Tensor();
  at::Tensor dh0 = need_h0 ? at::empty({B, H}, opts) : at::Tensor();
  at::Tensor dc0 = need_c0 ? at::empty({B, H}, opts) : at::Tensor();

  const T* wih = w_ih.data_ptr<T>();
  const T* wpk = Wpk.data_ptr<T>();
  const T* h0p = h0.defined() ? h0.data_ptr<T>() : nullptr;
  const T* c0p = c0.defined() ? c0.data_ptr<T>() : nullptr;
  const bool* rp = reset.defined() ? reset.data_ptr<bool>() : nullptr;
  const T* yp = y.data_ptr<T>();
  const T* Gs = mode == kTanh ? nullptr : Gsave.data_ptr<T>();
  const T* Cp = mode == kLSTM ? Cs.data_ptr<T>() : nullptr;
  const T* dyp = dy.data_ptr<T>();
  const T* dhnp = dhn.data_ptr<T>();
  const T* dcnp = mode == kLSTM ? dcn.data_ptr<T>() : nullptr;
  T* dGp = dG.data_ptr<T>();
  T* dhr = dhrec.data_ptr<T>();
  T* dccp = dcc.defined() ? dcc.data_ptr<T>() : nullptr;
  T* dh0p = dh0.defined() ? dh0.data_ptr<T>() : nullptr;
  T* dc0p = dc0.defined() ? dc0.data_ptr<T>() : nullptr;
  const int64_t SWs = mode == kGRU ? 4 * H : GH;  // width of the saved activations

  const int64_t P = choose_workers(B, S, GH, H);
  run_workers(P, [&](int64_t k) {
    for (int64_t t = T_ - 1; t >= 0; --t) {
      const int64_t bs = L.bs[t];
      const int64_t m = rows_of(bs, k, P);
      if (m == 0) continue;
      const int64_t next_bs = L.bs[t + 1];
      for (int64_t i = 0; i < m; ++i) {
        const int64_t r = k + i * P;
        const int64_t pos = L.off[t] + r;
        const bool ending = r >= next_bs;
        // gradient arriving from the next step of this row (none if that step starts a new sequence)
        const bool cut = !ending && rp && rp[L.off[t + 1] + r];
        const T* dh_in = ending ? dhnp + r * H : (cut ? nullptr : dhr + r * Hp);
        const bool rst = rp && rp[pos];
        T* dg = dGp + pos * DW;
        if (mode == kLSTM) {
          const T* dc_in = ending ? dcnp + r * H : (cut ? nullptr : dccp + r * H);
          const T* cp = rst ? nullptr : (t > 0 ? Cp + (L.off[t - 1] + r) * H : (c0p ? c0p + r * H : nullptr));
          lstm_bwd_row<T>(H, Gs + pos * SWs, Cp + pos * H, cp, dyp + pos * H, dh_in, dc_in, dg, dccp + r * H);
        } else if (mode == kGRU) {
          const T* hp = rst ? nullptr : (t > 0 ? yp + (L.off[t - 1] + r) * H : (h0p ? h0p + r * H : nullptr));
          gru_bwd_row<T>(H, Gs + pos * SWs, hp, dyp + pos * H, dh_in, dg, dhr + r * Hp);
        } else {
          tanh_bwd_row<T>(H, yp + pos * H, dyp + pos * H, dh_in, dg);
        }
      }
      // gradient to the previous hidden state of my rows: dG_t[:, recurrent part] @ W_hh
      if (t > 0 || need_h0) {
        const T* a = dGp + (L.off[t] + k) * DW + hoff;
        if (mode == kGRU) gemm_small<T, true>(pk, m, a, P * DW, wpk, dhr + k * Hp, P * Hp);
        else gemm_small<T, false>(pk, m, a, P * DW, wpk, dhr + k * Hp, P * Hp);
      }
    }
    const int64_t m0 = rows_of(B, k, P);
    for (int64_t i = 0; i < m0; ++i) {
      const int64_t r = k + i * P;
      const bool rst = rp && rp[r];
      if (dh0p) {
        if (rst) std::memset(dh0p + r * H, 0, sizeof(T) * H);
        else std::memcpy(dh0p + r * H, dhr + r * Hp, sizeof(T) * H);
      }
      if (dc0p) {
        if (rst) std::memset(dc0p + r * H, 0, sizeof(T) * H);
        else std::memcpy(dc0p + r * H, dccp + r * H, sizeof(T) * H);
      }
    }
  });

  // ---- weight and input gradients: single GEMMs over all positions
  at::Tensor dx, dwih, dwhh, dbih, dbhh;
  const T* xp = x.data_ptr<T>();
  if (needs & kNwhh) {
    // H_prev (S, H): each position's previous hidden state (zeros at t = 0 without h0 and after a reset)
    const int64_t first = h0p ? 0 : L.off[std::min<int64_t>(1, T_)];  // rows before `first` are all zero
    dwhh = at::empty({GH, H}, opts);
    if (first < S) {
      at::Tensor Hp = at::empty({S - first, H}, opts);
      T* hpp = Hp.data_ptr<T>();
      const int64_t t_start = h0p ? 0 : 1;
      at::parallel_for(t_start, T_, 16, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t) {
          const int64_t bs = L.bs[t];
          T* dst = hpp + (L.off[t] - first) * H;
          const T* src = t == 0 ? h0p : yp + L.off[t - 1] * H;
          std::memcpy(dst, src, sizeof(T) * bs * H);
          if (rp)
            for (int64_t r = 0; r < bs; ++r)
              if (rp[L.off[t] + r]) std::memset(dst + r * H, 0, sizeof(T) * H);
        }
      });
      gemm_rm<T>(true, false, GH, H, S - first, T(1), dGp + first * DW + hoff, DW, hpp, H, T(0),
                 dwhh.data_ptr<T>(), H);
    } else {
      dwhh.zero_();
    }
  }
  if (needs & kNwih) {
    dwih = at::empty({GH, F}, opts);
    T* d = dwih.data_ptr<T>();
    if (mode == kGRU) {  // dG columns [n_x, r, z, ...] -> W_ih rows [r, z, n]
      gemm_rm<T>(true, false, 2 * H, F, S, T(1), dGp + H, DW, xp, F, T(0), d, F);
      gemm_rm<T>(true, false, H, F, S, T(1), dGp, DW, xp, F, T(0), d + 2 * H * F, F);
    } else {
      gemm_rm<T>(true, false, GH, F, S, T(1), dGp, DW, xp, F, T(0), d, F);
    }
  }
  if (needs & kNx) {
    dx = at::empty({S, F}, opts);
    T* d = dx.data_ptr<T>();
    if (mode == kGRU) {
      gemm_rm<T>(false, false, S, F, 2 * H, T(1), dGp + H, DW, wih, F, T(0), d, F);
      gemm_rm<T>(false, false, S, F, H, T(1), dGp, DW, wih + 2 * H * F, F, T(1), d, F);
    } else {
      gemm_rm<T>(false, false, S, F, GH, T(1), dGp, DW, wih, F, T(0), d, F);
    }
  }
  if (needs & (kNbih | kNbhh)) {
    at::Tensor colsum = dG.sum(0);  // (DW,)
    if (mode == kGRU) {
      if (needs & kNbih) dbih = at::cat({colsum.narrow(0, H, 2 * H), colsum.narrow(0, 0, H)});
      if (needs & kNbhh) dbhh = colsum.narrow(0, H, 3 * H).clone();
    } else {
      if (needs & kNbih) dbih = colsum;
      if (needs & kNbhh) dbhh = (needs & kNbih) ? colsum.clone() : colsum;
    }
  }
  auto opt = [&](const at::Tensor& t) { return t.defined() ? t : at::empty({0}, opts); };
  return {opt(dx), opt(dwih), opt(dwhh), opt(dbih), opt(dbhh), opt(dh0), opt(dc0)};
}

// ------------------------------------------------------------------------------------------- entry points
void check_common(int64_t mode, const at::Tensor& x, const at::Tensor& w_ih, const at::Tensor& w_hh) {
  TORCH_CHECK(mode == kLSTM || mode == kGRU || mode == kTanh, "padless: unknown mode ", mode);
  TORCH_CHECK(x.device().is_cpu(), "padless: the packed CPU engine needs CPU tensors");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "padless: the packed CPU engine runs float32 and float64 only");
  TORCH_CHECK(x.dim() == 2, "padless: x must be (S, F)");
  const int64_t G = gates_of(mode);
  TORCH_CHECK(w_hh.dim() == 2 && w_hh.size(0) == G * w_hh.size(1), "padless: weight_hh must be (", G, "H, H)");
  TORCH_CHECK(w_ih.dim() == 2 && w_ih.size(0) == w_hh.size(0) && w_ih.size(1) == x.size(1),
              "padless: weight_ih must be (", G, "H, F)");
  TORCH_CHECK(w_ih.scalar_type() == x.scalar_type() && w_hh.scalar_type() == x.scalar_type(),
              "padless: weights and input must share a dtype");
}

at::Tensor opt_tensor(const std::optional<at::Tensor>& t, const at::Tensor& like, std::initializer_list<int64_t> shape,
                      const char* name) {
  if (!t.has_value() || !t->defined()) return at::Tensor();
  at::Tensor v = t->contiguous();
  TORCH_CHECK(v.scalar_type() == like.scalar_type() && v.device() == like.device(), "padless: ", name,
              " must match x's dtype and device");
  TORCH_CHECK(v.sizes().vec() == std::vector<int64_t>(shape), "padless: ", name, " has shape ", v.sizes(),
              ", expected ", c10::IntArrayRef(shape));
  return v;
}

at::Tensor reset_tensor(const std::optional<at::Tensor>& reset, int64_t S) {
  if (!reset.has_value() || !reset->defined()) return at::Tensor();
  at::Tensor r = reset->contiguous();
  TORCH_CHECK(r.scalar_type() == at::kBool && r.dim() == 1 && r.size(0) == S && r.device().is_cpu(),
              "padless: reset must be a (S,) bool CPU tensor");
  return r;
}

std::vector<at::Tensor> rnn_forward(int64_t mode, const at::Tensor& x_, const at::Tensor& batch_sizes,
                                    const at::Tensor& w_ih_, const at::Tensor& w_hh_,
                                    const std::optional<at::Tensor>& b_ih, const std::optional<at::Tensor>& b_hh,
                                    const std::optional<at::Tensor>& h0_, const std::optional<at::Tensor>& c0_,
                                    const std::optional<at::Tensor>& reset_, bool need_grad) {
  check_common(mode, x_, w_ih_, w_hh_);
  at::Tensor x = x_.contiguous(), w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous();
  const Layout L = make_layout(batch_sizes, x.size(0));
  const int64_t H = w_hh.size(1), GH = w_hh.size(0);
  at::Tensor bi = opt_tensor(b_ih, x, {GH}, "bias_ih");
  at::Tensor bh = opt_tensor(b_hh, x, {GH}, "bias_hh");
  at::Tensor h0 = opt_tensor(h0_, x, {L.B, H}, "h0");
  at::Tensor c0 = mode == kLSTM ? opt_tensor(c0_, x, {L.B, H}, "c0") : at::Tensor();
  at::Tensor reset = reset_tensor(reset_, L.S);
  // bias folded into the gate math: LSTM / RNN b_ih + b_hh; GRU b_ih + [b_hr, b_hz, 0] and b_hn apart
  at::Tensor bias_x = at::zeros({GH}, x.options());
  at::Tensor bias_hn;
  if (bi.defined()) bias_x.add_(bi);
  if (mode == kGRU) {
    bias_hn = at::zeros({H}, x.options());
    if (bh.defined()) {
      bias_x.narrow(0, 0, 2 * H).add_(bh.narrow(0, 0, 2 * H));
      bias_hn.copy_(bh.narrow(0, 2 * H, H));
    }
  } else if (bh.defined()) {
    bias_x.add_(bh);
  }
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "padless_rnn_forward", [&] {
    out = forward_impl<scalar_t>(mode, x, L, w_ih, w_hh, bias_x, bias_hn, h0, c0, reset, need_grad);
  });
  return out;
}

std::vector<at::Tensor> rnn_backward(int64_t mode, const at::Tensor& x_, const at::Tensor& batch_sizes,
                                     const at::Tensor& w_ih_, const at::Tensor& w_hh_,
                                     const std::optional<at::Tensor>& h0_, const std::optional<at::Tensor>& c0_,
                                     const std::optional<at::Tensor>& reset_, const at::Tensor& y,
                                     const at::Tensor& Gsave, const at::Tensor& Cs, const at::Tensor& dy_,
                                     const at::Tensor& dhn_, const at::Tensor& dcn_, int64_t needs) {
  check_common(mode, x_, w_ih_, w_hh_);
  at::Tensor x = x_.contiguous(), w_ih = w_ih_.contiguous(), w_hh = w_hh_.contiguous();
  const Layout L = make_layout(batch_sizes, x.size(0));
  const int64_t H = w_hh.size(1);
  at::Tensor h0 = opt_tensor(h0_, x, {L.B, H}, "h0");
  at::Tensor c0 = mode == kLSTM ? opt_tensor(c0_, x, {L.B, H}, "c0") : at::Tensor();
  at::Tensor reset = reset_tensor(reset_, L.S);
  TORCH_CHECK(y.is_contiguous() && y.size(0) == L.S && y.size(1) == H, "padless: saved output has the wrong shape");
  const int64_t SW = mode == kGRU ? 4 * H : w_hh.size(0);
  if (mode != kTanh)
    TORCH_CHECK(Gsave.is_contiguous() && Gsave.size(0) == L.S && Gsave.size(1) == SW,
                "padless: saved gates have the wrong shape");
  if (mode == kLSTM)
    TORCH_CHECK(Cs.is_contiguous() && Cs.size(0) == L.S && Cs.size(1) == H, "padless: saved cells have the wrong shape");
  at::Tensor dy = dy_.contiguous(), dhn = dhn_.contiguous();
  TORCH_CHECK(dy.sizes() == y.sizes() && dhn.size(0) == L.B && dhn.size(1) == H, "padless: gradient shapes");
  at::Tensor dcn;
  if (mode == kLSTM) {
    dcn = dcn_.contiguous();
    TORCH_CHECK(dcn.dim() == 2 && dcn.size(0) == L.B && dcn.size(1) == H, "padless: gradient shapes");
  }
  std::vector<at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "padless_rnn_backward", [&] {
    out = backward_impl<scalar_t>(mode, x, L, w_ih, w_hh, h0, c0, reset, y, Gsave, Cs, dy, dhn, dcn, needs);
  });
  return out;
}

std::string build_info() {
  std::string s = "vector=";
#if defined(CPU_CAPABILITY_AVX512)
  s += "avx512";
#elif defined(CPU_CAPABILITY_AVX2)
  s += "avx2";
#else
  s += "default";
#endif
  s += PADLESS_BLAS ? " gemm=blas" : " gemm=aten";
  s += PADLESS_MKL ? "+mkl" : "";
#ifdef _OPENMP
  s += " openmp";
#endif
  return s;
}

// Tests and tuning: "parallel_work" (0 = always split rows across threads) or "chunk_bytes"; a negative
// value only reads. Returns the previous value.
double tuning(const std::string& name, double v) {
  double* p = name == "parallel_work" ? &g_min_parallel_work : (name == "chunk_bytes" ? &g_chunk_bytes : nullptr);
  TORCH_CHECK(p != nullptr, "padless: unknown tuning knob ", name);
  const double old = *p;
  if (v >= 0) *p = v;
  return old;
}

}  // namespace

#define PADLESS_LIBRARY(ns, m) TORCH_LIBRARY(ns, m)
PADLESS_LIBRARY(PADLESS_NS, m) {
  m.def("rnn_forward(int mode, Tensor x, Tensor batch_sizes, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
        "Tensor? b_hh, Tensor? h0, Tensor? c0, Tensor? reset, bool need_grad) -> Tensor[]",
        &rnn_forward);
  m.def("rnn_backward(int mode, Tensor x, Tensor batch_sizes, Tensor w_ih, Tensor w_hh, Tensor? h0, "
        "Tensor? c0, Tensor? reset, Tensor y, Tensor gates, Tensor cells, Tensor dy, Tensor dhn, Tensor dcn, "
        "int needs) -> Tensor[]",
        &rnn_backward);
  m.def("build_info() -> str", &build_info);
  m.def("tuning(str name, float value) -> float", &tuning);
}
