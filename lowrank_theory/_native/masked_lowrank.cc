// Masked low-rank residual products for deep matrix completion (lowrank_theory._native).
//
// For U (m x k), P (k x n), a mask Omega (m x n) and a target T (m x n), with
// E = Omega .* (U P - T), one pass over the observed entries computes
//   loss = 1/2 sum E_ij^2,   G = E P^T (m x k),   H = U^T E (k x n),
// i.e. what one GD step of a factorization whose outer factors are thin (width k <= 32) needs
// from the d x d residual. Arithmetic is O(|Omega| k) and the mask is read once, instead of the
// dense formulation's three m x n x k matrix products and d x d passes.
//
// Rows are split over threads; each thread accumulates H in a private n x k buffer and the
// buffers are summed in a fixed order, so results are deterministic for a given thread count.
// Build: compiled on first use by lowrank_theory/_native.py (see there).
#include <cstdint>
#include <cstring>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

typedef double v4 __attribute__((vector_size(32), aligned(8)));
inline v4 ld4(const double* p) { v4 r; std::memcpy(&r, p, 32); return r; }
inline void st4(double* p, v4 v) { std::memcpy(p, &v, 32); }
inline double hsum(v4 a) { return (a[0] + a[1]) + (a[2] + a[3]); }

struct ByteTable {  // for each 8-bit pattern: its set bit positions, and how many
  uint8_t pos[256][8];
  uint8_t cnt[256];
  ByteTable() {
    for (int b = 0; b < 256; ++b) {
      int c = 0;
      for (int s = 0; s < 8; ++s)
        if (b >> s & 1) pos[b][c++] = static_cast<uint8_t>(s);
      for (int s = c; s < 8; ++s) pos[b][s] = 0;
      cnt[b] = static_cast<uint8_t>(c);
    }
  }
};
const ByteTable kTable;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "row_indices reads mask bytes as a little-endian word");

// Observed columns j0 <= j < j1 of one mask row (bytes 0/1) into js (capacity j1 - j0 + 8),
// branch-free (a data-dependent branch per observed entry cost more than the arithmetic).
inline int64_t row_indices(const uint8_t* __restrict__ mrow, int64_t j0, int64_t j1,
                           int32_t* __restrict__ js) {
  int64_t c = 0, j = j0;
  for (; j + 8 <= j1; j += 8) {
    uint64_t w;
    std::memcpy(&w, mrow + j, 8);
    // byte s (0 or 1) -> bit s
    const unsigned b = static_cast<unsigned>(((w & 0x0101010101010101ULL) * 0x0102040810204080ULL) >> 56);
    const uint8_t* p = kTable.pos[b];
    for (int s = 0; s < 8; ++s) js[c + s] = static_cast<int32_t>(j + p[s]);
    c += kTable.cnt[b];
  }
  for (; j < j1; ++j) {
    js[c] = static_cast<int32_t>(j);
    c += mrow[j] != 0;
  }
  return c;
}

constexpr int64_t kColumnBlock = 256;  // P^T and H^T blocks of 256 x 4NV doubles stay in L1/L2

// Rows [r0, r1). PT: n x 4NV (P^T zero-padded), HT: n x 4NV accumulator, gacc: (r1 - r0) x 4NV
// zeroed scratch. Writes G rows r0..r1 (m x k). Returns sum e^2.
template <int NV>
double rows(int64_t r0, int64_t r1, int64_t n, int64_t k, const double* __restrict__ U,
            const double* __restrict__ PT, const uint8_t* __restrict__ M,
            const double* __restrict__ T, double* __restrict__ G, double* __restrict__ HT,
            int32_t* __restrict__ js, double* __restrict__ gacc) {
  constexpr int KP = 4 * NV;
  double loss = 0.0;
  for (int64_t c0 = 0; c0 < n; c0 += kColumnBlock) {
    const int64_t c1 = c0 + kColumnBlock < n ? c0 + kColumnBlock : n;
    for (int64_t i = r0; i < r1; ++i) {
      double ub[KP] = {};
      for (int64_t a = 0; a < k; ++a) ub[a] = U[i * k + a];
      double* gi = gacc + (i - r0) * KP;
      v4 u[NV], g[NV];
      for (int q = 0; q < NV; ++q) {
        u[q] = ld4(ub + 4 * q);
        g[q] = ld4(gi + 4 * q);
      }
      const double* trow = T + i * n;
      const int64_t c = row_indices(M + i * n, c0, c1, js);
      for (int64_t s = 0; s < c; ++s) {
        const int64_t j = js[s];
        const double* p = PT + j * KP;
        v4 f = u[0] * ld4(p);
        for (int q = 1; q < NV; ++q) f += u[q] * ld4(p + 4 * q);
        const double e = hsum(f) - trow[j];
        loss += e * e;
        double* h = HT + j * KP;
        for (int q = 0; q < NV; ++q) {
          g[q] += e * ld4(p + 4 * q);
          st4(h + 4 * q, ld4(h + 4 * q) + e * u[q]);
        }
      }
      for (int q = 0; q < NV; ++q) st4(gi + 4 * q, g[q]);
    }
  }
  for (int64_t i = r0; i < r1; ++i)
    for (int64_t a = 0; a < k; ++a) G[i * k + a] = gacc[(i - r0) * KP + a];
  return loss;
}

using RowsFn = double (*)(int64_t, int64_t, int64_t, int64_t, const double*, const double*,
                          const uint8_t*, const double*, double*, double*, int32_t*, double*);
constexpr RowsFn kRows[9] = {nullptr, rows<1>, rows<2>, rows<3>, rows<4>,
                             rows<5>, rows<6>, rows<7>, rows<8>};

ffi::Error Impl(ffi::Buffer<ffi::F64> u, ffi::Buffer<ffi::F64> p, ffi::Buffer<ffi::PRED> mask,
                ffi::Buffer<ffi::F64> target, ffi::ResultBuffer<ffi::F64> g,
                ffi::ResultBuffer<ffi::F64> h, ffi::ResultBuffer<ffi::F64> loss,
                int64_t threads) {
  const auto ud = u.dimensions(), pd = p.dimensions(), md = mask.dimensions(),
             td = target.dimensions();
  if (ud.size() != 2 || pd.size() != 2 || md.size() != 2 || td.size() != 2)
    return ffi::Error::InvalidArgument("masked_lowrank: all operands must be matrices");
  const int64_t m = ud[0], k = ud[1], n = pd[1];
  if (pd[0] != k || md[0] != m || md[1] != n || td[0] != m || td[1] != n)
    return ffi::Error::InvalidArgument("masked_lowrank: shapes must be U (m,k), P (k,n), mask and target (m,n)");
  if (k < 1 || k > 32)
    return ffi::Error::InvalidArgument("masked_lowrank: the inner width k must be in [1, 32]");
  const int nv = static_cast<int>((k + 3) / 4), kp = 4 * nv;
  const double* P = p.typed_data();
  std::vector<double> pt;
  try {
    pt.assign(static_cast<size_t>(n) * kp, 0.0);
  } catch (const std::bad_alloc&) {
    return ffi::Error::Internal("masked_lowrank: out of memory for P^T");
  }
  for (int64_t a = 0; a < k; ++a)
    for (int64_t j = 0; j < n; ++j) pt[j * kp + a] = P[a * n + j];
  int64_t nt = threads < 1 ? 1 : threads;
  if (nt > m / 64) nt = m / 64 < 1 ? 1 : m / 64;  // a thread per >= 64 rows
  std::vector<std::vector<double>> ht, gacc;
  std::vector<std::vector<int32_t>> js;
  std::vector<double> part(nt, 0.0);
  std::vector<std::thread> pool;
  try {  // every allocation before any thread starts; none may escape the handler
    ht.assign(nt, std::vector<double>(static_cast<size_t>(n) * kp, 0.0));
    js.assign(nt, std::vector<int32_t>(kColumnBlock + 8));
    gacc.resize(nt);
    for (int64_t t = 0; t < nt; ++t)
      gacc[t].assign(static_cast<size_t>(m * (t + 1) / nt - m * t / nt) * kp, 0.0);
    pool.reserve(nt);
  } catch (const std::bad_alloc&) {
    return ffi::Error::Internal("masked_lowrank: out of memory for the per-thread buffers");
  }
  const uint8_t* M = reinterpret_cast<const uint8_t*>(mask.typed_data());
  auto work = [&](int64_t t) {
    part[t] = kRows[nv](m * t / nt, m * (t + 1) / nt, n, k, u.typed_data(), pt.data(), M,
                        target.typed_data(), g->typed_data(), ht[t].data(), js[t].data(),
                        gacc[t].data());
  };
  int64_t t = 1;
  try {
    for (; t < nt; ++t) pool.emplace_back(work, t);
  } catch (const std::system_error&) {  // no thread to be had: do its share here
  }
  for (int64_t rest = t; rest < nt; ++rest) work(rest);
  work(0);
  for (auto& th : pool) th.join();
  double* H = h->typed_data();
  for (int64_t a = 0; a < k; ++a)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t q = 0; q < nt; ++q) s += ht[q][j * kp + a];
      H[a * n + j] = s;
    }
  double l = 0.0;
  for (int64_t q = 0; q < nt; ++q) l += part[q];
  loss->typed_data()[0] = 0.5 * l;
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(LrtMaskedLowrank, Impl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F64>>()   // U (m, k)
                                  .Arg<ffi::Buffer<ffi::F64>>()   // P (k, n)
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // mask (m, n)
                                  .Arg<ffi::Buffer<ffi::F64>>()   // target (m, n)
                                  .Ret<ffi::Buffer<ffi::F64>>()   // G = E P^T (m, k)
                                  .Ret<ffi::Buffer<ffi::F64>>()   // H = U^T E (k, n)
                                  .Ret<ffi::Buffer<ffi::F64>>()   // loss (scalar)
                                  .Attr<int64_t>("threads"));
