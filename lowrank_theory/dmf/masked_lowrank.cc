// Masked low-rank residual products for deep matrix completion (lowrank_theory._native).
//
// For U (m x k), P (k x n), a mask Omega (m x n) and a target T (m x n), with
// E = Omega .* (U P - T), one pass over the observed entries computes
//   loss = 1/2 sum E_ij^2,   G = E P^T (m x k),   H = U^T E (k x n),
// i.e. what one GD step of a factorization whose outer factors are thin (width k <= 32) needs
// from the d x d residual. Arithmetic is O(|Omega| k) instead of the dense formulation's three
// m x n x k matrix products and d x d passes.
//
// Two handlers share the arithmetic:
//   LrtMaskedLowrank        takes the mask and the dense target and scans the mask (one byte per
//                           entry) for the observed columns of each row;
//   LrtMaskedLowrankPacked  takes the observed entries packed once for a whole GD run
//                           (native_kernel.pack_observed / pack_entries): per (column block,
//                           row) an offset, the column indices and the target values, so a step
//                           reads 12 bytes per observed entry and nothing else of the d x d
//                           arrays. The block width is an attribute: 256, or wider for sparse
//                           entries (so the offsets stay O(|Omega| + m)); a (block, row) may then
//                           hold more than 256 entries, taken 256 at a time.
//
// Rows are split into `threads` slots; each slot accumulates H in a private n x k buffer and the
// buffers are summed in slot order (by column ranges, once every slot is done), so results are
// deterministic for a given slot count, whichever threads run the slots. The slots run on XLA's
// intra-op thread pool (the caller takes slots too, and waits only for slots another thread has
// started, so a busy or one-thread pool cannot deadlock it).
// Build: compiled on first use by lowrank_theory/_native.py (see there).
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Four doubles in a register. Loads and stores of 32 bytes at 8-byte aligned addresses must be
// single unaligned vector moves: a memcpy into a vector variable (what this kernel did first)
// is one vmovupd under -march=skylake-avx512/icelake but goes through the stack under
// -march=haswell/znver3/x86-64-v3 (g++ 12: 256 stack round-trips in the inner loop, ~30x
// slower per entry, measured). With AVX the intrinsics say so directly; elsewhere an
// under-aligned vector type (GCC/Clang emit an unaligned load or store for it, or scalar code
// on targets without 32-byte vectors).
typedef double v4 __attribute__((vector_size(32)));
#if defined(__AVX__)
inline v4 ld4(const double* p) { return (v4)_mm256_loadu_pd(p); }
inline void st4(double* p, v4 v) { _mm256_storeu_pd(p, (__m256d)v); }
#else
typedef double v4u __attribute__((vector_size(32), aligned(8), may_alias));
inline v4 ld4(const double* p) { return *reinterpret_cast<const v4u*>(p); }
inline void st4(double* p, v4 v) { *reinterpret_cast<v4u*>(p) = v; }
#endif
inline double hsum(v4 a) { return (a[0] + a[1]) + (a[2] + a[3]); }
inline v4 bc(double x) { return v4{x, x, x, x}; }

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

// The entries (i, js[s]) with targets ts[s], s < c <= kColumnBlock, of one row i:
// e = u.p_j - t, loss += e^2, g += e p_j, h_j += e u. PT, HT: n x 4NV (P^T zero-padded,
// H^T accumulator); eb: scratch for c errors.
// Two phases with short dependency chains, so that the CPU overlaps many entries: first the
// errors, four entries at a time (their four dot products reduced together by one transposed
// horizontal sum), then the updates, four entries at a time.
template <int NV>
__attribute__((always_inline)) inline void row_entries(
    int64_t c, const int32_t* __restrict__ js, const double* __restrict__ ts,
    const double* __restrict__ PT, double* __restrict__ HT, const v4* u, v4* g, v4& lossv,
    double& loss, double* __restrict__ eb) {
  constexpr int KP = 4 * NV;
  int64_t s = 0;
  for (; s + 4 <= c; s += 4) {
    const double* p0 = PT + static_cast<int64_t>(js[s]) * KP;
    const double* p1 = PT + static_cast<int64_t>(js[s + 1]) * KP;
    const double* p2 = PT + static_cast<int64_t>(js[s + 2]) * KP;
    const double* p3 = PT + static_cast<int64_t>(js[s + 3]) * KP;
    v4 f0 = u[0] * ld4(p0), f1 = u[0] * ld4(p1), f2 = u[0] * ld4(p2), f3 = u[0] * ld4(p3);
    for (int q = 1; q < NV; ++q) {
      f0 += u[q] * ld4(p0 + 4 * q);
      f1 += u[q] * ld4(p1 + 4 * q);
      f2 += u[q] * ld4(p2 + 4 * q);
      f3 += u[q] * ld4(p3 + 4 * q);
    }
    // (f0, f1, f2, f3) -> (sum f0, sum f1, sum f2, sum f3)
    const v4 t0 = __builtin_shufflevector(f0, f1, 0, 4, 2, 6) + __builtin_shufflevector(f0, f1, 1, 5, 3, 7);
    const v4 t1 = __builtin_shufflevector(f2, f3, 0, 4, 2, 6) + __builtin_shufflevector(f2, f3, 1, 5, 3, 7);
    const v4 e = (__builtin_shufflevector(t0, t1, 0, 1, 4, 5) + __builtin_shufflevector(t0, t1, 2, 3, 6, 7)) - ld4(ts + s);
    lossv += e * e;
    st4(eb + s, e);
  }
  for (; s < c; ++s) {
    const double* p = PT + static_cast<int64_t>(js[s]) * KP;
    v4 f = u[0] * ld4(p);
    for (int q = 1; q < NV; ++q) f += u[q] * ld4(p + 4 * q);
    const double e = hsum(f) - ts[s];
    loss += e * e;
    eb[s] = e;
  }
  s = 0;
  for (; s + 4 <= c; s += 4) {
    const int64_t o0 = static_cast<int64_t>(js[s]) * KP, o1 = static_cast<int64_t>(js[s + 1]) * KP,
                  o2 = static_cast<int64_t>(js[s + 2]) * KP, o3 = static_cast<int64_t>(js[s + 3]) * KP;
    const v4 e0 = bc(eb[s]), e1 = bc(eb[s + 1]), e2 = bc(eb[s + 2]), e3 = bc(eb[s + 3]);
    for (int q = 0; q < NV; ++q) {
      g[q] += e0 * ld4(PT + o0 + 4 * q) + e1 * ld4(PT + o1 + 4 * q) + e2 * ld4(PT + o2 + 4 * q) +
              e3 * ld4(PT + o3 + 4 * q);
      st4(HT + o0 + 4 * q, ld4(HT + o0 + 4 * q) + e0 * u[q]);
      st4(HT + o1 + 4 * q, ld4(HT + o1 + 4 * q) + e1 * u[q]);
      st4(HT + o2 + 4 * q, ld4(HT + o2 + 4 * q) + e2 * u[q]);
      st4(HT + o3 + 4 * q, ld4(HT + o3 + 4 * q) + e3 * u[q]);
    }
  }
  for (; s < c; ++s) {
    const int64_t o = static_cast<int64_t>(js[s]) * KP;
    const v4 ev = bc(eb[s]);
    for (int q = 0; q < NV; ++q) {
      g[q] += ev * ld4(PT + o + 4 * q);
      st4(HT + o + 4 * q, ld4(HT + o + 4 * q) + ev * u[q]);
    }
  }
}

// 64-byte aligned buffers: with rows of 4NV doubles every 32-byte load and store of P^T and
// H^T stays within a cache line (16-byte alignment cost ~40 % in time, measured)
struct AlignedDelete {
  void operator()(double* p) const { ::operator delete[](p, std::align_val_t(64)); }
};
using AlignedBuffer = std::unique_ptr<double[], AlignedDelete>;
inline AlignedBuffer aligned_buffer(size_t count) {  // may throw std::bad_alloc
  return AlignedBuffer(new (std::align_val_t(64)) double[count]);
}

constexpr int64_t kColumnBlock = 256;  // P^T and H^T blocks of 256 x 4NV doubles stay in cache

// Where the observed entries of (column block b, row i) come from: the mask and dense target,
// or the packed arrays.
struct MaskSource {
  const uint8_t* M;
  const double* T;
  int64_t n;
  int64_t blocks() const { return (n + kColumnBlock - 1) / kColumnBlock; }
  bool check(int64_t, int64_t, int64_t) const { return true; }
  // js, ts: scratch of kColumnBlock + 8 entries; the count of observed entries
  int64_t get(int64_t b, int64_t i, int32_t* js, double* ts, const int32_t** jp,
              const double** tp) const {
    const int64_t c0 = b * kColumnBlock, c1 = c0 + kColumnBlock < n ? c0 + kColumnBlock : n;
    const int64_t c = row_indices(M + i * n, c0, c1, js);
    const double* trow = T + i * n;
    for (int64_t s = 0; s < c; ++s) ts[s] = trow[js[s]];
    *jp = js;
    *tp = ts;
    return c;
  }
};

// The layout pack_observed writes is checked by each slot for the rows it reads, one column block
// at a time, just before it reads them (in parallel; one vectorised pass, which also brings the
// entries into cache): offsets within the arrays and not decreasing, at most a block's width of
// entries per (block, row), columns inside the block. So a packing made for another shape,
// truncated or altered is refused (check() false), never read out of bounds. The order of the
// columns within a (block, row) is pack_observed's (ascending) and not checked: a full check
// cost ~5 % of the kernel's time, measured.
struct PackedSource {
  const int64_t* ptr;  // (nb * m + 1): entries of (b, i) are ptr[b m + i] .. ptr[b m + i + 1]
  const int32_t* cols;
  const double* vals;
  int64_t m, n, cap;  // cap: length of cols and vals (>= the entry count: padded)
  int64_t block;      // the column block's width (kColumnBlock, or wider for sparse entries)
  int64_t blocks() const { return (n + block - 1) / block; }
  bool check(int64_t b, int64_t r0, int64_t r1) const {
    const int64_t c0 = b * block, c1 = c0 + block < n ? c0 + block : n;
    const int64_t* p = ptr + b * m;
    if (p[r0] < 0 || p[r1] > cap) return false;
    int bad = 0;
    // unsigned: a decrease wraps to a huge count (and no signed overflow for any offsets)
    for (int64_t i = r0; i < r1; ++i)
      bad |= static_cast<uint64_t>(p[i + 1]) - static_cast<uint64_t>(p[i]) >
             static_cast<uint64_t>(c1 - c0);
    if (bad) return false;
    int32_t lo = INT32_MAX, hi = INT32_MIN;
    for (int64_t s = p[r0]; s < p[r1]; ++s) {
      lo = cols[s] < lo ? cols[s] : lo;
      hi = cols[s] > hi ? cols[s] : hi;
    }
    return p[r0] == p[r1] || (lo >= c0 && hi < c1);
  }
  int64_t get(int64_t b, int64_t i, int32_t*, double*, const int32_t** jp,
              const double** tp) const {
    const int64_t s0 = ptr[b * m + i];
    *jp = cols + s0;
    *tp = vals + s0;
    return ptr[b * m + i + 1] - s0;
  }
};

// Rows [r0, r1) of a slot: pads its rows of U into UP (m x 4NV), zeroes its HT (n x 4NV) and
// gacc ((r1 - r0) x 4NV), accumulates, and writes G rows r0..r1 (m x k). Returns sum e^2;
// sets *refused and stops if the source refuses the rows of a column block, or stops when
// another slot has set it.
template <int NV, class Source>
double rows(const Source& src, int64_t r0, int64_t r1, int64_t n, int64_t k,
            const double* __restrict__ U, double* __restrict__ UP, const double* __restrict__ PT,
            double* __restrict__ G, double* __restrict__ HT, double* __restrict__ gacc,
            int32_t* js, double* ts, std::atomic<bool>* refused) {
  constexpr int KP = 4 * NV;
  std::memset(HT, 0, sizeof(double) * n * KP);
  std::memset(gacc, 0, sizeof(double) * (r1 - r0) * KP);
  for (int64_t i = r0; i < r1; ++i)
    for (int64_t a = 0; a < KP; ++a) UP[i * KP + a] = a < k ? U[i * k + a] : 0.0;
  v4 lossv = bc(0.0);
  double loss = 0.0;
  double eb[kColumnBlock + 8];
  const int64_t nb = src.blocks();
  // block by block: the block's rows of P^T and H^T (random access) stay in cache while the rows
  // of U and G stream by in order (tiles of rows that kept U and G in cache instead, with P^T and
  // H^T streamed per tile, were 1.1-2.2x slower at d = 1e5, 2e7 entries, measured)
  for (int64_t b = 0; b < nb; ++b) {
    if (refused->load(std::memory_order_relaxed)) return 0.0;
    if (!src.check(b, r0, r1)) {
      refused->store(true, std::memory_order_relaxed);
      return 0.0;
    }
    for (int64_t i = r0; i < r1; ++i) {
      double* gi = gacc + (i - r0) * KP;
      v4 u[NV], g[NV];
      for (int q = 0; q < NV; ++q) {
        u[q] = ld4(UP + i * KP + 4 * q);
        g[q] = ld4(gi + 4 * q);
      }
      const int32_t* jp;
      const double* tp;
      const int64_t c = src.get(b, i, js, ts, &jp, &tp);
      for (int64_t o = 0; o < c; o += kColumnBlock)  // eb holds kColumnBlock errors
        row_entries<NV>(c - o < kColumnBlock ? c - o : kColumnBlock, jp + o, tp + o, PT, HT, u,
                        g, lossv, loss, eb);
      for (int q = 0; q < NV; ++q) st4(gi + 4 * q, g[q]);
    }
  }
  for (int64_t i = r0; i < r1; ++i)
    for (int64_t a = 0; a < k; ++a) G[i * k + a] = gacc[(i - r0) * KP + a];
  return loss + hsum(lossv);
}

// Waiting for other participants: a short spin (they usually finish within microseconds of
// each other), then a block on a condition variable, so that a waiter gives its core to the
// thread it waits for when runnable threads outnumber cores (spinning or yielding there kept
// the core busy while the thread it waited for was descheduled, measured).
struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  // counter += 1; wakes the blocked waiters when it reaches total
  void arrive(std::atomic<int64_t>& counter, int64_t total) {
    if (counter.fetch_add(1, std::memory_order_acq_rel) + 1 == total) {
      std::lock_guard<std::mutex> lock(mu);  // orders the wake after a waiter's last check
      cv.notify_all();
    }
  }
  void wait(const std::atomic<int64_t>& counter, int64_t total) {
    constexpr auto kSpin = std::chrono::microseconds(30);
    const auto t0 = std::chrono::steady_clock::now();
    for (int spins = 0; counter.load(std::memory_order_acquire) < total; ++spins) {
#if defined(__x86_64__) || defined(__i386__)
      _mm_pause();
#endif
      if ((spins & 63) == 63 && std::chrono::steady_clock::now() - t0 > kSpin) {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return counter.load(std::memory_order_acquire) >= total; });
        return;
      }
    }
  }
};

// Runs work(slot) for slot = 0..nt-1, then reduce(chunk) for chunk = 0..nc-1 once every slot is
// done, on the caller and XLA's intra-op pool. Each participant claims unclaimed slots; once all
// slots are claimed they are running, so a participant may wait for them, and then claims
// unclaimed chunks. The caller waits only for chunks that are claimed, hence running, so it never
// waits on a task the pool has not started (a busy or one-thread pool cannot deadlock it).
template <class Work, class Reduce>
void run_slots(ffi::ThreadPool& pool, int64_t nt, const Work& work, int64_t nc,
               const Reduce& reduce) {
  struct State {
    std::atomic<int64_t> next{0}, done{0}, next_chunk{0}, done_chunks{0};
    Waiter waiter;
  };
  std::shared_ptr<State> st;
  try {
    st = std::make_shared<State>();
  } catch (const std::bad_alloc&) {
    for (int64_t t = 0; t < nt; ++t) work(t);
    for (int64_t c = 0; c < nc; ++c) reduce(c);
    return;
  }
  const Work* w = &work;
  const Reduce* r = &reduce;
  auto claim = [st, w, r, nt, nc]() {  // late tasks find nothing to claim, never touch *w, *r
    for (int64_t t; (t = st->next.fetch_add(1, std::memory_order_acq_rel)) < nt;) {
      (*w)(t);
      st->waiter.arrive(st->done, nt);
    }
    if (st->next_chunk.load(std::memory_order_acquire) >= nc) return;
    st->waiter.wait(st->done, nt);
    for (int64_t c; (c = st->next_chunk.fetch_add(1, std::memory_order_acq_rel)) < nc;) {
      (*r)(c);
      st->waiter.arrive(st->done_chunks, nc);
    }
  };
  for (int64_t t = 1; t < nt; ++t) {
    try {
      auto task = claim;
      pool.Schedule(std::move(task));
    } catch (const std::bad_alloc&) {  // no task to be had: the caller claims its slots
      break;
    }
  }
  claim();
  st->waiter.wait(st->done_chunks, nc);
}

template <class Source>
using RowsFn = double (*)(const Source&, int64_t, int64_t, int64_t, int64_t, const double*,
                          double*, const double*, double*, double*, double*, int32_t*, double*,
                          std::atomic<bool>*);
template <class Source>
constexpr RowsFn<Source> kRows[9] = {nullptr,
                                     rows<1, Source>, rows<2, Source>, rows<3, Source>,
                                     rows<4, Source>, rows<5, Source>, rows<6, Source>,
                                     rows<7, Source>, rows<8, Source>};

// Work buffers, kept by each calling thread between calls (fresh ones cost page faults every
// call: ~20 us at d = 1000); all of a thread's buffers are released at the end of a call once
// together they exceed kKeepBytes.
struct Scratch {
  struct Entry {
    AlignedBuffer buf;
    size_t cap = 0;
  };
  std::vector<Entry> entries;
  size_t bytes = 0;
  double* get(size_t slot, size_t count) {  // may throw std::bad_alloc (state stays consistent)
    if (count == 0) count = 1;  // a valid pointer even for empty operands
    if (entries.size() <= slot) entries.resize(slot + 1);
    Entry& e = entries[slot];
    if (e.cap < count) {
      bytes -= e.cap * sizeof(double);
      e.buf.reset();
      e.cap = 0;
      e.buf = aligned_buffer(count);
      e.cap = count;
      bytes += count * sizeof(double);
    }
    return e.buf.get();
  }
  void trim(size_t keep_bytes) {
    if (bytes > keep_bytes || keep_bytes == 0) {
      entries.clear();
      bytes = 0;
    }
  }
};
constexpr size_t kKeepBytes = size_t(64) << 20;
thread_local Scratch tls_scratch;

template <class Source>
ffi::Error Products(ffi::ThreadPool& pool, const Source& src, const double* Up, const double* P,
                    int64_t m, int64_t n, int64_t k, double* Gp, double* Hp, double* lossp,
                    int64_t threads) {
  const int nv = static_cast<int>((k + 3) / 4), kp = 4 * nv;
  int64_t nt = threads < 1 ? 1 : threads;
  if (nt > m / 64) nt = m / 64 < 1 ? 1 : m / 64;  // a slot per >= 64 rows
  if (nt > 256) nt = 256;
  double part[256];
  std::atomic<bool> refused{false};  // read after run_slots (its done counter orders it)
  double *up, *pt[256], *ht[256], *gacc[256], *ts[256];
  int32_t* js[256];
  Scratch& sc = tls_scratch;
  try {  // every allocation before any slot runs; none may escape the handler
    up = sc.get(0, static_cast<size_t>(m) * kp);
    for (int64_t t = 0; t < nt; ++t) {
      const size_t rows_t = static_cast<size_t>(m * (t + 1) / nt - m * t / nt);
      pt[t] = sc.get(1 + 4 * t, static_cast<size_t>(n) * kp);
      ht[t] = sc.get(2 + 4 * t, static_cast<size_t>(n) * kp);
      gacc[t] = sc.get(3 + 4 * t, rows_t * kp);
      ts[t] = sc.get(4 + 4 * t, 2 * (kColumnBlock + 8));  // and js in its second half
      js[t] = reinterpret_cast<int32_t*>(ts[t] + kColumnBlock + 8);
    }
  } catch (const std::bad_alloc&) {
    sc.trim(0);
    return ffi::Error::Internal("masked_lowrank: out of memory for the work buffers");
  }
  const RowsFn<Source> fn = kRows<Source>[nv];
  // each slot makes its own copy of P^T, in its own core's cache (one copy made by the caller
  // and read by all slots: ~10 % slower with two slots, measured)
  auto work = [&](int64_t t) {
    double* ptt = pt[t];
    for (int64_t j = 0; j < n; ++j)
      for (int64_t a = 0; a < kp; ++a) ptt[j * kp + a] = a < k ? P[a * n + j] : 0.0;
    part[t] = fn(src, m * t / nt, m * (t + 1) / nt, n, k, Up, up, ptt, Gp, ht[t], gacc[t],
                 js[t], ts[t], &refused);
  };
  // H summed in slot order, a range of columns per chunk, the chunks shared by the participants in
  // the same dispatch (done by the caller alone, the sum took ~17 us of a ~290 us call at
  // d = 1000, k = 10 with two slots; shared, the call is ~10 us faster, measured)
  auto reduce = [&](int64_t c) {
    if (refused.load(std::memory_order_relaxed)) return;
    for (int64_t j = n * c / nt; j < n * (c + 1) / nt; ++j)
      for (int64_t a = 0; a < k; ++a) {
        double s = 0.0;
        for (int64_t q = 0; q < nt; ++q) s += ht[q][j * kp + a];
        Hp[a * n + j] = s;
      }
  };
  run_slots(pool, nt, work, nt, reduce);
  if (refused.load(std::memory_order_relaxed)) {
    sc.trim(kKeepBytes);
    return ffi::Error::InvalidArgument(
        "masked_lowrank: packed entries are not in the pack_observed layout for this shape");
  }
  double l = 0.0;
  for (int64_t q = 0; q < nt; ++q) l += part[q];
  lossp[0] = 0.5 * l;
  sc.trim(kKeepBytes);
  return ffi::Error::Success();
}

ffi::Error CheckFactors(const ffi::Buffer<ffi::F64>& u, const ffi::Buffer<ffi::F64>& p,
                        int64_t* m, int64_t* k, int64_t* n) {
  const auto ud = u.dimensions(), pd = p.dimensions();
  if (ud.size() != 2 || pd.size() != 2)
    return ffi::Error::InvalidArgument("masked_lowrank: U and P must be matrices");
  *m = ud[0];
  *k = ud[1];
  *n = pd[1];
  if (pd[0] != *k)
    return ffi::Error::InvalidArgument("masked_lowrank: shapes must be U (m,k), P (k,n)");
  if (*k < 1 || *k > 32)
    return ffi::Error::InvalidArgument("masked_lowrank: the inner width k must be in [1, 32]");
  return ffi::Error::Success();
}

ffi::Error Masked(ffi::ThreadPool pool, ffi::Buffer<ffi::F64> u, ffi::Buffer<ffi::F64> p,
                  ffi::Buffer<ffi::PRED> mask, ffi::Buffer<ffi::F64> target,
                  ffi::ResultBuffer<ffi::F64> g, ffi::ResultBuffer<ffi::F64> h,
                  ffi::ResultBuffer<ffi::F64> loss, int64_t threads) {
  int64_t m, k, n;
  if (ffi::Error err = CheckFactors(u, p, &m, &k, &n); err.failure()) return err;
  const auto md = mask.dimensions(), td = target.dimensions();
  if (md.size() != 2 || td.size() != 2 || md[0] != m || md[1] != n || td[0] != m || td[1] != n)
    return ffi::Error::InvalidArgument("masked_lowrank: mask and target must be (m,n)");
  const MaskSource src{reinterpret_cast<const uint8_t*>(mask.typed_data()), target.typed_data(), n};
  return Products(pool, src, u.typed_data(), p.typed_data(), m, n, k, g->typed_data(),
                  h->typed_data(), loss->typed_data(), threads);
}

ffi::Error Packed(ffi::ThreadPool pool, ffi::Buffer<ffi::F64> u, ffi::Buffer<ffi::F64> p,
                  ffi::Buffer<ffi::S64> ptr, ffi::Buffer<ffi::S32> cols,
                  ffi::Buffer<ffi::F64> vals, ffi::ResultBuffer<ffi::F64> g,
                  ffi::ResultBuffer<ffi::F64> h, ffi::ResultBuffer<ffi::F64> loss,
                  int64_t threads, int64_t block) {
  int64_t m, k, n;
  if (ffi::Error err = CheckFactors(u, p, &m, &k, &n); err.failure()) return err;
  if (block < 1)
    return ffi::Error::InvalidArgument("masked_lowrank: the column block must be >= 1");
  const int64_t nb = (n + block - 1) / block;
  const int64_t cap = static_cast<int64_t>(cols.element_count());  // >= nnz (padded)
  const int64_t* pp = ptr.typed_data();
  // The arrays' sizes here; each (block, row) is checked by the slot that reads it (PackedSource)
  if (static_cast<int64_t>(ptr.element_count()) != nb * m + 1 ||
      static_cast<int64_t>(vals.element_count()) != cap || pp[0] != 0 || pp[nb * m] > cap)
    return ffi::Error::InvalidArgument(
        "masked_lowrank: packed entries do not match U and P (pack_observed layout)");
  const PackedSource src{ptr.typed_data(), cols.typed_data(), vals.typed_data(), m, n, cap,
                         block};
  return Products(pool, src, u.typed_data(), p.typed_data(), m, n, k, g->typed_data(),
                  h->typed_data(), loss->typed_data(), threads);
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(LrtMaskedLowrank, Masked,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F64>>()   // U (m, k)
                                  .Arg<ffi::Buffer<ffi::F64>>()   // P (k, n)
                                  .Arg<ffi::Buffer<ffi::PRED>>()  // mask (m, n)
                                  .Arg<ffi::Buffer<ffi::F64>>()   // target (m, n)
                                  .Ret<ffi::Buffer<ffi::F64>>()   // G = E P^T (m, k)
                                  .Ret<ffi::Buffer<ffi::F64>>()   // H = U^T E (k, n)
                                  .Ret<ffi::Buffer<ffi::F64>>()   // loss (scalar)
                                  .Attr<int64_t>("threads"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(LrtMaskedLowrankPacked, Packed,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F64>>()  // U (m, k)
                                  .Arg<ffi::Buffer<ffi::F64>>()  // P (k, n)
                                  .Arg<ffi::Buffer<ffi::S64>>()  // ptr (nb m + 1)
                                  .Arg<ffi::Buffer<ffi::S32>>()  // cols (nnz)
                                  .Arg<ffi::Buffer<ffi::F64>>()  // vals (nnz)
                                  .Ret<ffi::Buffer<ffi::F64>>()  // G = E P^T (m, k)
                                  .Ret<ffi::Buffer<ffi::F64>>()  // H = U^T E (k, n)
                                  .Ret<ffi::Buffer<ffi::F64>>()  // loss (scalar)
                                  .Attr<int64_t>("threads")
                                  .Attr<int64_t>("block"));  // column block width
