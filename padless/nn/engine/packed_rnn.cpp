// padless packed recurrent engine (CPU).
//
// Owns: the compiled forward and backward passes of one LSTM / GRU / tanh-RNN layer and direction
// over a whole ragged batch in PackedSequence layout (time-major, shrinking batch), with per-row resets.
// Forward: per time step ONE small GEMM on the active rows, [x_t | h_{t-1}] @ [W_ih | W_hh]^T (the input
// projection rides along; GRU: two, its n gate keeps the recurrent part apart), plus fused, vectorised
// gate math; what backward needs (activations, cell states) goes to preallocated (S, ...) buffers.
// Backward: per step (reverse time) fused elementwise work and ONE small GEMM, dG_t @ [W_ih | W_hh]
// ([dx_t | dh_{t-1}]); the weight and bias gradients are accumulated as rank-64 updates of dG^T @ [x | 1 |
// h_prev | 1] over chunks of positions, i.e. the single "dW = dG^T X" GEMM of cuDNN, cut into pieces that
// are still hot in cache.
//
// The GEMMs are a register-blocked micro-kernel on weights packed once per call: no BLAS call, packing
// or allocation per step (MKL's per-call packing and scaling cost ~40% at these sizes). Rows are split
// across torch's intra-op threads (row r goes to thread r % P): rows are independent sequences, so a
// thread runs the whole time loop on its rows with no synchronisation at all (one at::parallel_for per
// call); the weight-gradient partials of the threads are summed at the end.
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

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros.h>
#include <c10/core/impl/alloc_cpu.h>
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <type_traits>
#include <vector>

#ifndef PADLESS_NS
#define PADLESS_NS padless_engine
#endif
#if defined(_MSC_VER)
#define PADLESS_RESTRICT __restrict
#else
#define PADLESS_RESTRICT __restrict__
#endif

namespace {

using at::vec::Vectorized;

enum Mode : int64_t { kLSTM = 0, kGRU = 1, kTanh = 2 };

inline int64_t gates_of(int64_t mode) { return mode == kLSTM ? 4 : (mode == kGRU ? 3 : 1); }

// Run f(k) for k in [0, P) on torch's intra-op threads (one k per thread when the team is large enough).
// No synchronisation between them: each k owns its rows for the whole time loop.
template <typename F>
void run_workers(int64_t P, const F& f) {
  if (P <= 1) {
    f(0);
    return;
  }
  at::parallel_for(0, P, 1, [&](int64_t b, int64_t e) {
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
// Pad the row stride of buffers that neighbouring threads write (row r and r + 1 belong to different
// threads) to whole cache lines, so the threads never share a line. Off: measured no gain here (H = 37,
// 100 on 2 cores), and y then needs compacting; kept as a knob ("pad_rows") for machines where it pays.
double g_pad_rows = 0;

template <typename T>
int64_t row_stride(int64_t n, int64_t P) {
  constexpr int64_t line = 64 / sizeof(T);
  return (P > 1 && g_pad_rows != 0) ? (n + line - 1) / line * line : n;
}

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

// ------------------------------------------------------------------------------------------- block pool
// The large tensors a call returns or saves for backward (y, activations, cells, dx, dW) come from a pool
// of blocks that go back to it when the tensor is freed, so that under glibc's default allocator a
// training step does not mmap, fault in (page by page, from both threads) and munmap them again (the
// effect benchmarks/RESULTS.md measured for long dense calls). At JapaneseVowels sizes an A/B showed no
// difference on this machine; it matters for buffers above glibc's dynamic mmap threshold (up to 32 MiB).
// Free blocks are capped (g_pool_bytes, 0 = off); tensors under 64 KiB use at::empty.
double g_pool_bytes = double(int64_t(64) << 20);

class BlockPool {
 public:
  void* get(size_t bytes, size_t& got) {
    {
      std::lock_guard<std::mutex> g(mu_);
      auto it = free_.lower_bound(bytes);
      if (it != free_.end() && it->first <= bytes + bytes / 4) {  // never hand out a much bigger block
        got = it->first;
        void* p = it->second;
        free_bytes_ -= it->first;
        free_.erase(it);
        return p;
      }
    }
    got = bytes;
    return c10::alloc_cpu(bytes);
  }
  void put(void* p, size_t bytes) {
    {
      std::lock_guard<std::mutex> g(mu_);
      const size_t cap = (size_t)g_pool_bytes;
      while (free_bytes_ + bytes > cap && !free_.empty()) {  // evict the largest blocks first
        auto last = std::prev(free_.end());
        free_bytes_ -= last->first;
        c10::free_cpu(last->second);
        free_.erase(last);
      }
      if (free_bytes_ + bytes <= cap) {
        free_.emplace(bytes, p);
        free_bytes_ += bytes;
        return;
      }
    }
    c10::free_cpu(p);
  }

 private:
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  size_t free_bytes_ = 0;
};

BlockPool& pool() {
  static BlockPool* p = new BlockPool();  // leaked: tensors may be freed during interpreter shutdown
  return *p;
}

at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& opts) {
  int64_t numel = 1;
  for (int64_t v : sizes) numel *= v;
  const size_t bytes = (size_t)std::max<int64_t>(numel, 1) * opts.dtype().itemsize();
  if (bytes < (size_t(64) << 10) || g_pool_bytes <= 0) return at::empty(sizes, opts);
  size_t got = 0;
  void* p = pool().get(bytes, got);
  return at::from_blob(p, sizes, [got](void* q) { pool().put(q, got); }, opts);
}

// ------------------------------------------------------------------------------------------- workspace
// Scratch that outlives one call, per calling thread and slot, grown as needed: no malloc, no fresh
// pages to fault in at every training step. Never returned, never saved for backward. Buffers above
// kMaxCached bytes are allocated per call instead (a huge batch should not pin its memory forever).
constexpr int64_t kMaxCached = int64_t(64) << 20;

template <typename T>
T* workspace(int slot, int64_t numel, at::Tensor& keep) {
  numel = std::max<int64_t>(numel, 1);
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  if (numel * (int64_t)sizeof(T) > kMaxCached) {
    keep = at::empty({numel}, opts);
    return keep.data_ptr<T>();
  }
  // deliberately leaked: no destructor runs after torch's allocator is gone at exit
  thread_local std::vector<at::Tensor>* cache = new std::vector<at::Tensor>[2];
  std::vector<at::Tensor>& v = cache[std::is_same_v<T, float> ? 0 : 1];
  if ((int)v.size() <= slot) v.resize(slot + 1);
  at::Tensor& t = v[slot];
  if (!t.defined() || t.numel() < numel) t = at::empty({numel + numel / 4}, opts);
  keep = t;
  return t.data_ptr<T>();
}

// ------------------------------------------------------------------------------------------- small GEMM
// The per-step GEMMs: C (m x N) [+]= [A1 | A2] (m x (K1 + K2), rows lda1 / lda2 apart) @ W, with W packed
// once per call into panels of NR = NV vector widths: panel p is (K1 + K2) x NR contiguous (zero columns
// past N). Two sources let one GEMM take the input projection and the recurrent one at once
// ([x_t | h_{t-1}] @ [W_ih | W_hh]^T). A register block of MR rows x NR columns accumulates over K with one
// broadcast of A per row and NV vector loads of W per k; panels are the outer loop so a panel stays in L1
// across the row blocks. No call overhead, no packing per step, no allocation. C must have room for the
// padded columns; panels below `split` go to C1, the others to C2 (one GEMM, two destinations).
// (float64 is for checking and precision, not speed: fewer register blocks keep the build short.)
#if defined(CPU_CAPABILITY_AVX512)
template <typename T, int NV> constexpr int kMaxMR = sizeof(T) == 8 ? 4 : 12;
#elif defined(CPU_CAPABILITY_AVX2)
template <typename T, int NV> constexpr int kMaxMR = sizeof(T) == 8 ? 4 : (NV == 1 ? 12 : 6);
#else
template <typename T, int NV> constexpr int kMaxMR = 4;
#endif

template <typename T>
struct Src {
  const T* a = nullptr;
  int64_t lda = 0, K = 0;
  int64_t ldk = 1;  // stride along k (GEN kernels only)
};

// acc += A (MR rows, element (i, k) at A[i * lda + k * ldk]) @ B (K x NR, row k at Bp + k * ldb). The
// per-step kernels (GEN = false) have ldk = 1 and ldb = NR (packed panels) built in.
template <typename T, int MR, int NV, bool GEN>
inline void micro_accumulate(Vectorized<T> (&acc)[MR][NV], const Src<T>& s, const T* PADLESS_RESTRICT Bp,
                             int64_t ldb_) {
  using V = Vectorized<T>;
  constexpr int VL = V::size();
  constexpr int NR = NV * VL;
  const T* PADLESS_RESTRICT A = s.a;
  const int64_t lda = s.lda;
  const int64_t ldk = GEN ? s.ldk : 1;
  const int64_t ldb = GEN ? ldb_ : NR;
  for (int64_t k = 0; k < s.K; ++k) {
    V b[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) b[v] = V::loadu(Bp + k * ldb + v * VL);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V a(A[i * lda + k * ldk]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = at::vec::fmadd(a, b[v], acc[i][v]);
    }
  }
}

template <typename T, int MR, int NV, bool ACC, bool GEN = false>
inline void micro_kernel(const Src<T>& s1, const Src<T>& s2, const T* PADLESS_RESTRICT Bp, T* PADLESS_RESTRICT C,
                         int64_t ldc, int64_t ldb = 0) {
  using V = Vectorized<T>;
  constexpr int VL = V::size();
  constexpr int NR = NV * VL;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[i][v] = V(T(0));
  micro_accumulate<T, MR, NV, GEN>(acc, s1, Bp, ldb);
  if (s2.K > 0) micro_accumulate<T, MR, NV, GEN>(acc, s2, Bp + s1.K * (GEN ? ldb : NR), ldb);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      T* c = C + i * ldc + v * VL;
      if constexpr (ACC) (acc[i][v] + V::loadu(c)).store(c);
      else acc[i][v].store(c);
    }
}

template <typename T, int NV, bool ACC, bool GEN = false, int MR = kMaxMR<T, NV>>
inline void micro_dispatch(int mr, const Src<T>& s1, const Src<T>& s2, const T* Bp, T* C, int64_t ldc,
                           int64_t ldb = 0) {
  if constexpr (MR > 0) {
    if (mr == MR) return micro_kernel<T, MR, NV, ACC, GEN>(s1, s2, Bp, C, ldc, ldb);
    return micro_dispatch<T, NV, ACC, GEN, MR - 1>(mr, s1, s2, Bp, C, ldc, ldb);
  }
}

struct Packed {
  int64_t nv = 1, nr = 0, K = 0;
  int64_t split = 0;   // panels of the first output part
  int64_t panels = 0;  // all panels
  int64_t N1p = 0;     // padded columns of the first part (= split * nr)
  int64_t Np = 0;      // padded columns of all parts
  int64_t numel() const { return panels * K * nr; }
};

// Panel width (1 or 2 vectors) padding the two column parts N1, N2 least; 2 on a tie.
template <typename T>
Packed plan_pack(int64_t K, int64_t N1, int64_t N2 = 0) {
  constexpr int64_t VL = Vectorized<T>::size();
  auto pad = [](int64_t n, int64_t r) { return (n + r - 1) / r * r; };
  Packed p;
  p.K = K;
  p.nv = pad(N1, 2 * VL) + pad(N2, 2 * VL) <= pad(N1, VL) + pad(N2, VL) ? 2 : 1;
  p.nr = p.nv * VL;
  p.N1p = pad(N1, p.nr);
  p.Np = p.N1p + pad(N2, p.nr);
  p.split = p.N1p / p.nr;
  p.panels = p.Np / p.nr;
  return p;
}

// Panels of W^T for C = A @ W^T, stacked along K: rows [0, K1) of the panels from W1 (N x K1 row-major),
// rows [K1, K1 + K2) from W2 (N x K2); columns past N are zero. Reads run along W's rows.
template <typename T>
void pack_transposed(const Packed& p, T* dst, int64_t N, const T* W1, int64_t K1, const T* W2 = nullptr,
                     int64_t K2 = 0) {
  at::parallel_for(0, p.panels, 1, [&](int64_t b, int64_t e) {
    for (int64_t q = b; q < e; ++q) {
      T* d = dst + q * p.K * p.nr;
      for (int64_t c = 0; c < p.nr; ++c) {
        const int64_t col = q * p.nr + c;
        if (col >= N) {
          for (int64_t k = 0; k < p.K; ++k) d[k * p.nr + c] = T(0);
          continue;
        }
        const T* r1 = W1 + col * K1;
        for (int64_t k = 0; k < K1; ++k) d[k * p.nr + c] = r1[k];
        if (W2) {
          const T* r2 = W2 + col * K2;
          for (int64_t k = 0; k < K2; ++k) d[(K1 + k) * p.nr + c] = r2[k];
        }
      }
    }
  });
}

// Panels of W as is, for C = A @ W, two column parts: panels below p.split hold W1's columns (K x N1
// row-major, packed row k taken from W1's row row1(k)), the others W2's (K x N2). Contiguous copies.
template <typename T, typename R>
void pack_rows(const Packed& p, T* dst, const T* W1, int64_t N1, const R& row1, const T* W2, int64_t N2) {
  at::parallel_for(0, p.panels, 1, [&](int64_t b, int64_t e) {
    for (int64_t q = b; q < e; ++q) {
      T* d = dst + q * p.K * p.nr;
      const bool first = q < p.split;
      const int64_t c0 = (first ? q : q - p.split) * p.nr;
      const int64_t N = first ? N1 : N2;
      const int64_t cols = std::max<int64_t>(0, std::min<int64_t>(p.nr, N - c0));
      for (int64_t k = 0; k < p.K; ++k) {
        const T* src = first ? W1 + row1(k) * N1 + c0 : W2 + k * N2 + c0;
        std::memcpy(d + k * p.nr, src, sizeof(T) * cols);
        std::memset(d + k * p.nr + cols, 0, sizeof(T) * (p.nr - cols));
      }
    }
  });
}

// C [+]= [A1 | A2] @ packed W over panels [q0, q1); panel q < split goes to C1 (column q * nr), the others
// to C2 (column (q - split) * nr). Row blocks are balanced (e.g. 14 rows -> 7 + 7).
template <typename T, bool ACC>
void gemm_small(const Packed& p, int64_t m, const Src<T>& s1, const Src<T>& s2, const T* Bp, int64_t q0,
                int64_t q1, T* C1, int64_t ldc1, T* C2 = nullptr, int64_t ldc2 = 0) {
  if (m <= 0 || q0 >= q1) return;
  auto run = [&](auto nv_tag) {
    constexpr int NV = decltype(nv_tag)::value;
    constexpr int MRX = kMaxMR<T, NV>;
    constexpr int64_t NR = NV * Vectorized<T>::size();
    const int64_t blocks = (m + MRX - 1) / MRX;
    for (int64_t q = q0; q < q1; ++q) {
      const T* bp = Bp + q * p.K * NR;
      T* c = q < p.split ? C1 + q * NR : C2 + (q - p.split) * NR;
      const int64_t ldc = q < p.split ? ldc1 : ldc2;
      int64_t i = 0;
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int mr = (int)((m - i + (blocks - blk) - 1) / (blocks - blk));
        Src<T> a1{s1.a + i * s1.lda, s1.lda, s1.K}, a2{s2.a ? s2.a + i * s2.lda : nullptr, s2.lda, s2.K};
        micro_dispatch<T, NV, ACC>(mr, a1, a2, bp, c + i * ldc, ldc);
        i += mr;
      }
    }
  };
  if (p.nv == 2) run(std::integral_constant<int, 2>{});
  else run(std::integral_constant<int, 1>{});
}

// Weight-gradient update from a chunk of n rows: C[g][cols of panels q0..q1) += sum_i Gc[i][g] * X[i][col]
// for gates g in [g0, g1); Gc is (n x ldg) row-major, X (n x ldx) with ldx a multiple of the panel width.
template <typename T>
void gemm_wgrad(int64_t nv, int64_t n, const T* Gc, int64_t ldg, int64_t g0, int64_t g1, const T* X, int64_t ldx,
                int64_t q0, int64_t q1, T* C, int64_t ldc) {
  if (n <= 0 || g0 >= g1 || q0 >= q1) return;
  auto run = [&](auto nv_tag) {
    constexpr int NV = decltype(nv_tag)::value;
    constexpr int MRX = kMaxMR<T, NV>;
    constexpr int64_t NR = NV * Vectorized<T>::size();
    const int64_t M = g1 - g0, blocks = (M + MRX - 1) / MRX;
    for (int64_t q = q0; q < q1; ++q) {
      int64_t i = 0;
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int mr = (int)((M - i + (blocks - blk) - 1) / (blocks - blk));
        const Src<T> a{Gc + g0 + i, 1, n, ldg};
        micro_dispatch<T, NV, true, true>(mr, a, Src<T>{}, X + q * NR, C + (g0 + i) * ldc + q * NR, ldc, ldx);
        i += mr;
      }
    }
  };
  if (nv == 2) run(std::integral_constant<int, 2>{});
  else run(std::integral_constant<int, 1>{});
}

// ------------------------------------------------------------------------------------------- forward rows
// LSTM, one row: s = x W_ih^T + h W_hh^T (4H, gates i f g o), bias = b_ih + b_hh; cp = previous cell state
// or null (zero). Writes c, h (and the final state when hn); act (4H) receives the activations if given.
template <typename T>
inline void lstm_fwd_row(int64_t H, const T* s, const T* bias, const T* cp, T* c_out, T* h_out, T* hn, T* cn,
                         T* act) {
  using O = VecOps<T>;
  using V = Vectorized<T>;
  for_vec<T>(H, [&](auto full, int64_t j, int64_t n) {
    constexpr bool F = decltype(full)::value;
    V i = O::sigmoid(ld<T, F>(s + j, n) + ld<T, F>(bias + j, n));
    V f = O::sigmoid(ld<T, F>(s + H + j, n) + ld<T, F>(bias + H + j, n));
    V gg = O::tanh(ld<T, F>(s + 2 * H + j, n) + ld<T, F>(bias + 2 * H + j, n));
    V o = O::sigmoid(ld<T, F>(s + 3 * H + j, n) + ld<T, F>(bias + 3 * H + j, n));
    V c = i * gg;
    if (cp) c = at::vec::fmadd(f, ld<T, F>(cp + j, n), c);
    V h = o * O::tanh(c);
    st<T, F>(c, c_out + j, n);
    st<T, F>(h, h_out + j, n);
    if (hn) {
      st<T, F>(h, hn + j, n);
      st<T, F>(c, cn + j, n);
    }
    if (act) {
      st<T, F>(i, act + j, n);
      st<T, F>(f, act + H + j, n);
      st<T, F>(gg, act + 2 * H + j, n);
      st<T, F>(o, act + 3 * H + j, n);
    }
  });
}

// GRU, one row: sx = x W_ih^T (3H, r z n), sh = h W_hh^T (3H) or null (zero state); bias = b_ih +
// [b_hr, b_hz, 0]; hp = previous h or null. act (4H) receives [r, z, n, W_hn h + b_hn] if given.
template <typename T>
inline void gru_fwd_row(int64_t H, const T* sx, const T* sh, const T* bias, const T* bhn, const T* hp, T* h_out,
                        T* hn, T* act) {
  using O = VecOps<T>;
  using V = Vectorized<T>;
  for_vec<T>(H, [&](auto full, int64_t j, int64_t n) {
    constexpr bool F = decltype(full)::value;
    V zr = ld<T, F>(sx + j, n) + ld<T, F>(bias + j, n);
    V zz = ld<T, F>(sx + H + j, n) + ld<T, F>(bias + H + j, n);
    V xn = ld<T, F>(sx + 2 * H + j, n) + ld<T, F>(bias + 2 * H + j, n);
    V ghn = ld<T, F>(bhn + j, n);
    if (sh) {
      zr = zr + ld<T, F>(sh + j, n);
      zz = zz + ld<T, F>(sh + H + j, n);
      ghn = ghn + ld<T, F>(sh + 2 * H + j, n);
    }
    V r = O::sigmoid(zr), z = O::sigmoid(zz);
    V nn = O::tanh(at::vec::fmadd(r, ghn, xn));
    V h = hp ? at::vec::fmadd(z, ld<T, F>(hp + j, n) - nn, nn) : nn - z * nn;
    st<T, F>(h, h_out + j, n);
    if (hn) st<T, F>(h, hn + j, n);
    if (act) {
      st<T, F>(r, act + j, n);
      st<T, F>(z, act + H + j, n);
      st<T, F>(nn, act + 2 * H + j, n);
      st<T, F>(ghn, act + 3 * H + j, n);
    }
  });
}

template <typename T>
inline void tanh_fwd_row(int64_t H, const T* s, const T* bias, T* h_out, T* hn) {
  using V = Vectorized<T>;
  for_vec<T>(H, [&](auto full, int64_t j, int64_t n) {
    constexpr bool F = decltype(full)::value;
    V h = VecOps<T>::tanh(ld<T, F>(s + j, n) + ld<T, F>(bias + j, n));
    st<T, F>(h, h_out + j, n);
    if (hn) st<T, F>(h, hn + j, n);
  });
}

// ------------------------------------------------------------------------------------------- backward rows
// LSTM: a = activations (4H), c = this step's cell state, cp = previous (or null), dh_in / dc_in = incoming
// gradients (null = 0); writes dG (4H) and the cell gradient flowing back (dcc = dc * f).
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
  auto opts = x.options();
  const int64_t P = choose_workers(B, S, GH, H);
  const int64_t SW = row_stride<T>(mode == kGRU ? 4 * H : GH, P);  // row stride of the saved activations
  const int64_t ldh = row_stride<T>(H, P);                         // row stride of h and c buffers
  at::Tensor y = pooled_empty({S, H}, opts);
  at::Tensor hn = pooled_empty({B, H}, opts);
  at::Tensor cn = mode == kLSTM ? pooled_empty({B, H}, opts) : at::Tensor();
  // saved for backward: activations (S, SW) (not for tanh: y is enough) and LSTM cell states (S, ldh)
  at::Tensor Gs = need_grad && mode != kTanh ? pooled_empty({S, SW}, opts) : at::Tensor();
  at::Tensor Cs = need_grad && mode == kLSTM ? pooled_empty({S, ldh}, opts) : at::Tensor();

  const int64_t maxm = std::max<int64_t>(rows_of(B, 0, P), 1);
  const T* wih = w_ih.data_ptr<T>();
  const T* whh = w_hh.data_ptr<T>();
  at::Tensor k0, k1, k2, k3, k4, k5;
  // LSTM / tanh: one GEMM per step on [x_t | h_{t-1}] with [W_ih | W_hh]^T. GRU: two (its n gate keeps
  // the recurrent part apart), x_t @ W_ih^T and h_{t-1} @ W_hh^T.
  const bool gru = mode == kGRU;
  const Packed pk = gru ? plan_pack<T>(F, GH) : plan_pack<T>(F + H, GH);
  const Packed pkh = plan_pack<T>(H, GH);
  T* Bx = workspace<T>(0, pk.numel(), k0);
  if (gru) pack_transposed<T>(pk, Bx, GH, wih, F);
  else pack_transposed<T>(pk, Bx, GH, wih, F, whh, H);
  T* Bh = nullptr;
  if (gru) {
    Bh = workspace<T>(1, pkh.numel(), k1);
    pack_transposed<T>(pkh, Bh, GH, whh, H);
  }
  const int64_t W1 = pk.Np;
  T* scr1 = workspace<T>(2, P * maxm * W1, k2);
  T* scr2 = gru ? workspace<T>(3, P * maxm * pkh.Np, k3) : nullptr;
  T* hz = workspace<T>(4, P * maxm * H, k4);  // previous h of my rows with reset rows zeroed
  T* cst = nullptr;                          // inference LSTM: running cell state per row
  if (mode == kLSTM && !need_grad) {
    cst = workspace<T>(5, B * ldh, k5);
    if (c0.defined())
      for (int64_t r = 0; r < B; ++r) std::memcpy(cst + r * ldh, c0.data_ptr<T>() + r * H, sizeof(T) * H);
  }
  at::Tensor k6;
  T* yw = ldh == H ? y.data_ptr<T>() : workspace<T>(14, S * ldh, k6);  // h of every position (row stride ldh)

  const T* xp = x.data_ptr<T>();
  const T* bx = bias_x.data_ptr<T>();
  const T* bhn = bias_hn.defined() ? bias_hn.data_ptr<T>() : nullptr;
  const T* h0p = h0.defined() ? h0.data_ptr<T>() : nullptr;
  const T* c0p = c0.defined() ? c0.data_ptr<T>() : nullptr;
  const bool* rp = reset.defined() ? reset.data_ptr<bool>() : nullptr;
  T* yp = yw;
  T* hnp = hn.data_ptr<T>();
  T* cnp = cn.defined() ? cn.data_ptr<T>() : nullptr;
  T* Gp = Gs.defined() ? Gs.data_ptr<T>() : nullptr;
  T* Cp = Cs.defined() ? Cs.data_ptr<T>() : nullptr;

  run_workers(P, [&](int64_t k) {
    T* s1 = scr1 + k * maxm * W1;
    T* s2 = gru ? scr2 + k * maxm * pkh.Np : nullptr;
    T* hzk = hz + k * maxm * H;
    for (int64_t t = 0; t < T_; ++t) {
      const int64_t bs = L.bs[t];
      const int64_t m = rows_of(bs, k, P);
      if (m == 0) break;
      // previous hidden state of my rows: block t-1 of y (its first bs rows), or h0; reset rows read zeros
      Src<T> hs = t > 0 ? Src<T>{yp + (L.off[t - 1] + k) * ldh, P * ldh, H}
                        : Src<T>{h0p ? h0p + k * H : nullptr, P * H, H};
      if (hs.a && rp) {
        bool any = false;
        for (int64_t i = 0; i < m && !any; ++i) any = rp[L.off[t] + k + i * P];
        if (any) {
          for (int64_t i = 0; i < m; ++i) {
            if (rp[L.off[t] + k + i * P]) std::memset(hzk + i * H, 0, sizeof(T) * H);
            else std::memcpy(hzk + i * H, hs.a + i * hs.lda, sizeof(T) * H);
          }
          hs = Src<T>{hzk, H, H};
        }
      }
      const Src<T> xs{xp + (L.off[t] + k) * F, P * F, F};
      if (gru) {
        gemm_small<T, false>(pk, m, xs, Src<T>{}, Bx, 0, pk.panels, s1, W1);
        if (hs.a) gemm_small<T, false>(pkh, m, hs, Src<T>{}, Bh, 0, pkh.panels, s2, pkh.Np);
      } else {
        gemm_small<T, false>(pk, m, xs, hs.a ? hs : Src<T>{}, Bx, 0, pk.panels, s1, W1);
      }
      const int64_t next_bs = L.bs[t + 1];
      for (int64_t i = 0; i < m; ++i) {
        const int64_t r = k + i * P;
        const int64_t pos = L.off[t] + r;
        const bool rst = rp && rp[pos];
        const bool has_prev = !rst && (t > 0 || h0p);
        const bool ending = r >= next_bs;
        T* h_out = yp + pos * ldh;
        T* hnr = ending ? hnp + r * H : nullptr;
        T* act = Gp ? Gp + pos * SW : nullptr;
        if (mode == kLSTM) {
          const T* cp = nullptr;
          T* c_out;
          if (need_grad) {
            if (!rst) cp = t > 0 ? Cp + (L.off[t - 1] + r) * ldh : c0p ? c0p + r * H : nullptr;
            c_out = Cp + pos * ldh;
          } else {
            if (!rst && (t > 0 || c0p)) cp = cst + r * ldh;
            c_out = cst + r * ldh;
          }
          lstm_fwd_row<T>(H, s1 + i * W1, bx, cp, c_out, h_out, hnr, ending ? cnp + r * H : nullptr, act);
        } else if (gru) {
          const T* hp = has_prev ? (t > 0 ? yp + (L.off[t - 1] + r) * ldh : h0p + r * H) : nullptr;
          gru_fwd_row<T>(H, s1 + i * W1, has_prev ? s2 + i * pkh.Np : nullptr, bx, bhn, hp, h_out, hnr, act);
        } else {
          tanh_fwd_row<T>(H, s1 + i * W1, bx, h_out, hnr);
        }
      }
    }
  });
  if (yw != y.data_ptr<T>()) {  // compact the padded rows into y
    T* d = y.data_ptr<T>();
    at::parallel_for(0, S, 256, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) std::memcpy(d + i * H, yw + i * ldh, sizeof(T) * H);
    });
  }
  std::vector<at::Tensor> out{y, hn};
  out.push_back(cn.defined() ? cn : at::empty({0}, opts));
  out.push_back(Gs.defined() ? Gs : at::empty({0}, opts));
  out.push_back(Cs.defined() ? Cs : at::empty({0}, opts));
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
  const bool gru = mode == kGRU;
  const int64_t DW = gru ? 4 * H : GH;  // dG width; the recurrent part is its last GH columns
  const int64_t hoff = DW - GH;
  auto opts = x.options();
  const bool need_x = needs & kNx;
  const bool need_h0 = (needs & kNh0) && h0.defined();
  const bool need_c0 = (needs & kNc0) && c0.defined() && mode == kLSTM;
  const bool need_w = needs & (kNwih | kNwhh | kNbih | kNbhh);
  const T* wih = w_ih.data_ptr<T>();
  const T* whh = w_hh.data_ptr<T>();

  // Per step: [dx_t | dh_{t-1}] = dG_t @ [W_ih | W_hh] in one GEMM (LSTM / tanh: both read all of dG);
  // GRU: dx_t = dG_t[:, n_x r z] @ W_ih[n r z] and dh_{t-1} = dG_t[:, r z n_h] @ W_hh, two GEMMs.
  at::Tensor k0, k1, k2, k3, k4, k5, k6, k7;
  Packed pk, pkx;
  T* Bp = nullptr;
  T* Bxp = nullptr;
  auto same = [](int64_t k) { return k; };
  if (!gru) {
    pk = plan_pack<T>(GH, need_x ? F : 0, H);
    Bp = workspace<T>(6, pk.numel(), k0);
    pack_rows<T>(pk, Bp, wih, F, same, whh, H);
  } else {
    pk = plan_pack<T>(GH, 0, H);
    Bp = workspace<T>(6, pk.numel(), k0);
    pack_rows<T>(pk, Bp, wih, F, same, whh, H);
    if (need_x) {
      pkx = plan_pack<T>(GH, F, 0);
      Bxp = workspace<T>(7, pkx.numel(), k1);
      // dG columns [n_x, r, z] -> W_ih rows [n, r, z]
      pack_rows<T>(pkx, Bxp, wih, F, [H](int64_t k) { return k < H ? 2 * H + k : k - H; }, whh, H);
    }
  }
  const int64_t Hp = pk.Np - pk.N1p;          // row stride of dhrec (room for padded columns)
  const int64_t Fp = gru ? pkx.N1p : pk.N1p;  // row stride of the dx scratch

  // Weight gradients, accumulated inside the loop: each thread keeps its last CH rows of dG (Gc) and of
  // [x | 1 | h_prev | 1] (Xc, the ones give the bias gradients) and adds Gc^T @ Xc into its own partial
  // dW (DW x XW) whenever the chunk is full. No (S, .) gradient buffer, no second pass over the data.
  const int64_t P = choose_workers(B, S, GH, H);
  const int64_t maxm = std::max<int64_t>(rows_of(B, 0, P), 1);
  const int64_t CH = std::max<int64_t>(64, maxm);
  const Packed pw = plan_pack<T>(0, F + 1, H + 1);  // column layout of Xc / dW
  const int64_t XF = pw.N1p, XW = pw.Np;            // H part starts at column XF
  T* Gc = workspace<T>(8, P * CH * DW, k2);
  T* dhr = workspace<T>(9, B * Hp, k3);
  T* dccp = mode == kLSTM ? workspace<T>(10, B * row_stride<T>(H, P), k4) : nullptr;
  T* dxs = need_x ? workspace<T>(11, S * Fp, k5) : nullptr;
  T* Xc = need_w ? workspace<T>(12, P * CH * XW, k6) : nullptr;
  T* dWk = need_w ? workspace<T>(13, P * DW * XW, k7) : nullptr;
  at::Tensor dh0 = need_h0 ? at::empty({B, H}, opts) : at::Tensor();
  at::Tensor dc0 = need_c0 ? at::empty({B, H}, opts) : at::Tensor();

  const T* xp = x.data_ptr<T>();
  const T* h0p = h0.defined() ? h0.data_ptr<T>() : nullptr;
  const T* c0p = c0.defined() ? c0.data_ptr<T>() : nullptr;
  const bool* rp = reset.defined() ? reset.data_ptr<bool>() : nullptr;
  const T* yp = y.data_ptr<T>();
  const T* Gs = mode == kTanh ? nullptr : Gsave.data_ptr<T>();
  const T* Cp = mode == kLSTM ? Cs.data_ptr<T>() : nullptr;
  const int64_t ldg = mode == kTanh ? 0 : Gsave.size(1);  // row strides chosen by the forward
  const int64_t ldc = mode == kLSTM ? Cs.size(1) : 0;
  const int64_t ldd = row_stride<T>(H, P);                // dcc: written by neighbouring threads
  const T* dyp = dy.data_ptr<T>();
  const T* dhnp = dhn.data_ptr<T>();
  const T* dcnp = mode == kLSTM ? dcn.data_ptr<T>() : nullptr;
  T* dh0p = dh0.defined() ? dh0.data_ptr<T>() : nullptr;
  T* dc0p = dc0.defined() ? dc0.data_ptr<T>() : nullptr;

  run_workers(P, [&](int64_t k) {
    T* gc = Gc + k * CH * DW;
    T* xc = need_w ? Xc + k * CH * XW : nullptr;
    T* dw = need_w ? dWk + k * DW * XW : nullptr;
    if (need_w) {
      std::memset(xc, 0, sizeof(T) * CH * XW);
      std::memset(dw, 0, sizeof(T) * DW * XW);
      for (int64_t i = 0; i < CH; ++i) xc[i * XW + F] = xc[i * XW + XF + H] = T(1);
    }
    int64_t n = 0;  // rows in the chunk
    auto flush = [&]() {
      if (need_w && n > 0) {
        if (!gru) {
          gemm_wgrad<T>(pw.nv, n, gc, DW, 0, DW, xc, XW, 0, pw.panels, dw, XW);
        } else {  // input side: rows [n_x, r, z] x [x | 1]; recurrent side: rows [r, z, n_h] x [h | 1]
          gemm_wgrad<T>(pw.nv, n, gc, DW, 0, 3 * H, xc, XW, 0, pw.split, dw, XW);
          gemm_wgrad<T>(pw.nv, n, gc, DW, H, 4 * H, xc, XW, pw.split, pw.panels, dw, XW);
        }
      }
      n = 0;
    };
    for (int64_t t = T_ - 1; t >= 0; --t) {
      const int64_t bs = L.bs[t];
      const int64_t m = rows_of(bs, k, P);
      if (m == 0) continue;
      if (n + m > CH) flush();
      const int64_t next_bs = L.bs[t + 1];
      for (int64_t i = 0; i < m; ++i) {
        const int64_t r = k + i * P;
        const int64_t pos = L.off[t] + r;
        const bool ending = r >= next_bs;
        // gradient arriving from the next step of this row (none if that step starts a new sequence)
        const bool cut = !ending && rp && rp[L.off[t + 1] + r];
        const T* dh_in = ending ? dhnp + r * H : (cut ? nullptr : dhr + r * Hp);
        const bool rst = rp && rp[pos];
        const T* hp = rst ? nullptr : (t > 0 ? yp + (L.off[t - 1] + r) * H : h0p ? h0p + r * H : nullptr);
        T* dg = gc + (n + i) * DW;
        if (mode == kLSTM) {
          const T* dc_in = ending ? dcnp + r * H : (cut ? nullptr : dccp + r * ldd);
          const T* cp = rst ? nullptr : (t > 0 ? Cp + (L.off[t - 1] + r) * ldc : (c0p ? c0p + r * H : nullptr));
          lstm_bwd_row<T>(H, Gs + pos * ldg, Cp + pos * ldc, cp, dyp + pos * H, dh_in, dc_in, dg, dccp + r * ldd);
        } else if (gru) {
          gru_bwd_row<T>(H, Gs + pos * ldg, hp, dyp + pos * H, dh_in, dg, dhr + r * Hp);
        } else {
          tanh_bwd_row<T>(H, yp + pos * H, dyp + pos * H, dh_in, dg);
        }
        if (need_w) {
          T* xr = xc + (n + i) * XW;
          std::memcpy(xr, xp + pos * F, sizeof(T) * F);
          if (hp) std::memcpy(xr + XF, hp, sizeof(T) * H);
          else std::memset(xr + XF, 0, sizeof(T) * H);
        }
      }
      // [dx_t | dh_{t-1}] of my rows (dh only where a previous state exists or h0 wants a gradient)
      const int64_t row0 = L.off[t] + k;
      const bool want_dh = t > 0 || need_h0;
      T* dxk = need_x ? dxs + row0 * Fp : nullptr;
      const T* a = gc + n * DW;
      if (!gru) {
        const int64_t q0 = need_x ? 0 : pk.split, q1 = want_dh ? pk.panels : pk.split;
        gemm_small<T, false>(pk, m, Src<T>{a, DW, GH}, Src<T>{}, Bp, q0, q1, dxk, P * Fp, dhr + k * Hp, P * Hp);
      } else {
        if (need_x)
          gemm_small<T, false>(pkx, m, Src<T>{a, DW, GH}, Src<T>{}, Bxp, 0, pkx.panels, dxk, P * Fp);
        if (want_dh)
          gemm_small<T, true>(pk, m, Src<T>{a + hoff, DW, GH}, Src<T>{}, Bp, 0, pk.panels, nullptr, 0,
                              dhr + k * Hp, P * Hp);
      }
      n += m;
    }
    flush();
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
        else std::memcpy(dc0p + r * H, dccp + r * ldd, sizeof(T) * H);
      }
    }
  });

  at::Tensor dx, dwih, dwhh, dbih, dbhh;
  if (need_w) {  // sum the threads' partials; dW rows are in dG's column order
    dwih = pooled_empty({GH, F}, opts);
    dwhh = pooled_empty({GH, H}, opts);
    dbih = at::empty({GH}, opts);
    dbhh = at::empty({GH}, opts);
    T* di = dwih.data_ptr<T>();
    T* dh = dwhh.data_ptr<T>();
    T* bi = dbih.data_ptr<T>();
    T* bh = dbhh.data_ptr<T>();
    at::parallel_for(0, GH, 16, [&](int64_t b, int64_t e) {
      std::vector<T> acc(XW);
      for (int64_t g = b; g < e; ++g) {
        // dG columns of W_ih row g and of W_hh row g
        const int64_t gi = gru ? (g < 2 * H ? g + H : g - 2 * H) : g;
        const int64_t gh = gru ? g + H : g;
        for (int64_t c = 0; c < XW; ++c) acc[c] = T(0);
        for (int64_t q = 0; q < P; ++q) {
          const T* wi = dWk + q * DW * XW + gi * XW;
          const T* wh = dWk + q * DW * XW + gh * XW;
          for (int64_t c = 0; c <= F; ++c) acc[c] += wi[c];
          for (int64_t c = XF; c <= XF + H; ++c) acc[c] += wh[c];
        }
        std::memcpy(di + g * F, acc.data(), sizeof(T) * F);
        bi[g] = acc[F];
        std::memcpy(dh + g * H, acc.data() + XF, sizeof(T) * H);
        bh[g] = acc[XF + H];
      }
    });
    if (!(needs & kNwih)) dwih = at::Tensor();
    if (!(needs & kNwhh)) dwhh = at::Tensor();
    if (!(needs & kNbih)) dbih = at::Tensor();
    if (!(needs & kNbhh)) dbhh = at::Tensor();
  }
  if (need_x) {
    dx = pooled_empty({S, F}, opts);
    T* d = dx.data_ptr<T>();
    at::parallel_for(0, S, 1024, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) std::memcpy(d + i * F, dxs + i * Fp, sizeof(T) * F);
    });
  }
  auto opt = [&](const at::Tensor& t) { return t.defined() ? t : at::empty({0}, opts); };
  return {opt(dx), opt(dwih), opt(dwhh), opt(dbih), opt(dbhh), opt(dh0), opt(dc0)};
}

// ------------------------------------------------------------------------------------------- entry points
std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    default: return c10::toString(t);
  }
}

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
  for (const at::Tensor* w : {&w_ih, &w_hh})
    TORCH_CHECK(w->scalar_type() == x.scalar_type() && w->device() == x.device(), "padless: ",
                w == &w_ih ? "weight_ih" : "weight_hh", " is ", dtype_name(w->scalar_type()), " on ", w->device(),
                "; x is ", dtype_name(x.scalar_type()), " on ", x.device());
}

at::Tensor opt_tensor(const std::optional<at::Tensor>& t, const at::Tensor& like, std::initializer_list<int64_t> shape,
                      const char* name) {
  if (!t.has_value() || !t->defined()) return at::Tensor();
  at::Tensor v = t->contiguous();
  TORCH_CHECK(v.scalar_type() == like.scalar_type() && v.device() == like.device(), "padless: ", name, " is ",
              dtype_name(v.scalar_type()), " on ", v.device(), "; x is ", dtype_name(like.scalar_type()), " on ",
              like.device());
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
    TORCH_CHECK(Gsave.dim() == 2 && Gsave.is_contiguous() && Gsave.size(0) == L.S && Gsave.size(1) >= SW,
                "padless: saved gates have the wrong shape");
  if (mode == kLSTM)
    TORCH_CHECK(Cs.dim() == 2 && Cs.is_contiguous() && Cs.size(0) == L.S && Cs.size(1) >= H,
                "padless: saved cells have the wrong shape");
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
  s += " gemm=micro-kernel";
#ifdef _OPENMP
  s += " openmp";
#endif
  return s;
}

// Tests and tuning: "parallel_work" (0 = always split rows across threads), "pad_rows" (0/1), "pool_bytes"
// (cap on pooled free blocks, 0 = no pool); a negative value only reads. Returns the previous value.
double tuning(const std::string& name, double v) {
  double* p = name == "parallel_work" ? &g_min_parallel_work
              : name == "pad_rows"    ? &g_pad_rows
              : name == "pool_bytes"  ? &g_pool_bytes
                                      : nullptr;
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
