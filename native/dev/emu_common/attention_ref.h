// The attention cases shared by the CPU emulations of the split-KV decode kernels (native/dev/emu_split,
// native/dev/emu_grouped): a batch of paged-attention inputs, check_ops' fixed batches, and an independent
// double-precision reference of causal paged attention written from the contract in opt_kernels.h. Header-only;
// include once per program, after emu.h (its declarations are file-local, in an unnamed namespace).
#ifndef OPT_EMU_COMMON_ATTENTION_REF_H
#define OPT_EMU_COMMON_ATTENTION_REF_H
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "emu.h"
#include "ty.h"  // Ty<T>: the storage types' traits

namespace {

struct Batch {
  int heads = 1, head_dim = 64, block_size = 16, num_blocks = 0, max_blocks = 0, total_rows = 0;
  std::vector<int32_t> query_start, query_count, context_len, tables;
  float scale = 0.125f;
  std::string kind;
};

enum class Want { Unwritten, NaN, Values };

// From the contract (opt_kernels.h): per row, unwritten / NaN / values; per (row, head) NaN when a visible key's
// score is NaN. Overlapping sequences (bad input, outside the contract) follow the kernel's documented rule: the
// highest sequence index owns the row.
void reference(const Batch& b, const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
               std::vector<Want>& want, std::vector<double>& ref) {
  const int D = b.head_dim, width = b.heads * D;
  const int num_seqs = static_cast<int>(b.query_count.size());
  want.assign(b.total_rows, Want::Unwritten);
  ref.assign(static_cast<size_t>(b.total_rows) * width, 0.0);
  std::vector<int> owner(b.total_rows, -1);
  for (int s = 0; s < num_seqs; ++s)
    for (int i = 0; i < b.query_count[s]; ++i) {
      const long long row = static_cast<long long>(b.query_start[s]) + i;
      if (row >= 0 && row < b.total_rows) owner[row] = std::max(owner[row], s);
    }
  for (int row = 0; row < b.total_rows; ++row) {
    const int s = owner[row];
    if (s < 0) continue;
    const int count = b.query_count[s], context = b.context_len[s];
    if (count > context || static_cast<long long>(context) > static_cast<long long>(b.max_blocks) * b.block_size) {
      want[row] = Want::NaN;
      continue;
    }
    const int pos = context - count + (row - b.query_start[s]);
    std::vector<long long> slots(pos + 1);
    bool bad = false;
    for (int p = 0; p <= pos; ++p) {
      const int blk = b.tables[static_cast<size_t>(s) * b.max_blocks + p / b.block_size];
      if (blk < 0 || blk >= b.num_blocks) bad = true;
      slots[p] = static_cast<long long>(blk) * b.block_size + p % b.block_size;
    }
    if (bad) {
      want[row] = Want::NaN;
      continue;
    }
    want[row] = Want::Values;
    for (int h = 0; h < b.heads; ++h) {
      std::vector<double> sc(pos + 1);
      double mx = -INFINITY;
      bool nan = false;
      for (int p = 0; p <= pos; ++p) {
        double dot = 0;
        for (int d = 0; d < D; ++d)
          dot += static_cast<double>(q[static_cast<size_t>(row) * width + h * D + d]) *
                 k[static_cast<size_t>(slots[p]) * width + h * D + d];
        sc[p] = dot * b.scale;
        if (std::isnan(sc[p])) nan = true;
        else mx = std::max(mx, sc[p]);
      }
      double sum = 0;
      for (int p = 0; p <= pos; ++p) sum += (sc[p] = std::exp(sc[p] - mx));
      for (int d = 0; d < D; ++d) {
        double acc = 0;
        for (int p = 0; p <= pos; ++p) acc += sc[p] * v[static_cast<size_t>(slots[p]) * width + h * D + d];
        ref[static_cast<size_t>(row) * width + h * D + d] = nan ? NAN : acc / sum;
      }
    }
  }
}

void fill_tables(Batch& b, std::mt19937& rng, int extra_blocks) {
  const int num_seqs = static_cast<int>(b.query_count.size());
  int needed = 0;
  int widest = 0;
  for (int s = 0; s < num_seqs; ++s) {
    const int n = (std::max(b.context_len[s], 0) + b.block_size - 1) / b.block_size;
    needed += n;
    widest = std::max(widest, n);
  }
  if (b.max_blocks < widest) b.max_blocks = widest;
  b.num_blocks = needed + extra_blocks;
  std::vector<int32_t> pool(b.num_blocks);
  for (int i = 0; i < b.num_blocks; ++i) pool[i] = i;
  std::shuffle(pool.begin(), pool.end(), rng);
  b.tables.assign(static_cast<size_t>(num_seqs) * std::max(b.max_blocks, 1), -7);  // padding: never read
  int next = 0;
  for (int s = 0; s < num_seqs; ++s)
    for (int i = 0; i < (std::max(b.context_len[s], 0) + b.block_size - 1) / b.block_size; ++i)
      b.tables[static_cast<size_t>(s) * b.max_blocks + i] = pool[next++];
}

// check_ops' make_batch: a decode row at 300 tokens, a 70-token prefill, 5 new on 40 cached, a sequence with no
// new rows; rows out of sequence order.
Batch check_ops_batch(std::mt19937& rng, int heads, int head_dim) {
  Batch b;
  b.kind = "check_ops make_batch";
  b.heads = heads;
  b.head_dim = head_dim;
  b.block_size = 16;
  b.query_count = {1, 70, 5, 0};
  b.context_len = {300, 70, 45, 10};
  b.query_start = {75, 0, 70, 76};
  b.total_rows = 76;
  b.max_blocks = 0;
  fill_tables(b, rng, 7);
  b.scale = 1.f / std::sqrt(static_cast<float>(head_dim));
  return b;
}

// check_ops' check_attention_rules batch.
Batch rules_batch() {
  Batch b;
  b.kind = "check_ops rules";
  b.heads = 2;
  b.head_dim = 64;
  b.block_size = 16;
  b.num_blocks = 12;
  b.max_blocks = 8;
  b.query_start = {0, 3, 5, 7};
  b.query_count = {3, 1, 2, 20};
  b.context_len = {3, 100, 1, 20};
  b.tables.assign(4 * 8, -1);
  b.tables[0] = 0;
  const int32_t seq1[] = {1, 2, 3, 99, 4, 5, 6};
  for (int i = 0; i < 7; ++i) b.tables[8 + i] = seq1[i];
  b.tables[16] = 7;
  b.tables[24] = 8;
  b.tables[25] = 99;
  b.total_rows = 27;
  b.scale = 0.125f;
  return b;
}

[[maybe_unused]] int pick_context(std::mt19937& rng) {
  static const int kEdges[] = {1, 2, 63, 64, 65, 127, 128, 129, 191, 192, 193, 255, 256, 257, 300, 511, 700};
  return rng() % 3 == 0 ? kEdges[rng() % (sizeof kEdges / sizeof kEdges[0])] : 1 + static_cast<int>(rng() % 700);
}

// What a random batch draws from; each emulation picks its own (the draws come in a fixed order, so one seed gives
// one sequence of batches).
struct BatchMix {
  int (*context)(std::mt19937&);  // a context near the kernel's tile or round edges
  int decode_min, decode_max;     // sequences of a decode batch (family 1); equal: a fixed size, nothing drawn
  int decode_edge_one_in;         // 1 in N decode sequences takes context(), the others 1..300
  int mixed_counts[10];           // query counts of the mixed family (one in ten sequences gets none)
  int mixed_spread;               // cached positions before a mixed sequence's queries: 0 or 0..spread-1
  int graph_width[2];             // a graph's table width (positions), one of two, in a quarter of the batches
  int special_one_in;             // a rule case (bad block, inconsistent, too long, overlap) in 4 of N batches
};

// Random ragged batches: family 0 decode at batch 1, 1 decode at batch decode_min..decode_max, else prefill and
// decode rows mixed with unowned rows between; tables as wide as the contexts or a graph's width; sometimes a bad
// block id, an inconsistent sequence, a too-long context, overlapping rows (bad input: the highest sequence owns
// the row).
[[maybe_unused]] Batch random_batch(std::mt19937& rng, int head_dim, int family, const BatchMix& mix) {
  Batch b;
  b.head_dim = head_dim;
  static const int kBs[] = {16, 16, 16, 32, 1, 7};
  b.block_size = kBs[rng() % 6];
  std::vector<int> counts, ctx;
  if (family == 0) {
    b.kind = "decode b1";
    b.heads = 1 + static_cast<int>(rng() % 4);
    counts = {1};
    ctx = {mix.context(rng)};
  } else if (family == 1) {
    b.heads = 1 + static_cast<int>(rng() % 2);
    const int n = mix.decode_min == mix.decode_max
        ? mix.decode_min
        : mix.decode_min + static_cast<int>(rng() % (mix.decode_max - mix.decode_min + 1));
    b.kind = mix.decode_min == mix.decode_max ? "decode b" + std::to_string(n) : "decode";
    for (int s = 0; s < n; ++s) {
      counts.push_back(1);
      ctx.push_back(rng() % mix.decode_edge_one_in == 0 ? mix.context(rng) : 1 + static_cast<int>(rng() % 300));
    }
  } else {
    b.kind = "mixed";
    b.heads = 1 + static_cast<int>(rng() % 2);
    const int n = 1 + static_cast<int>(rng() % 4);
    for (int s = 0; s < n; ++s) {
      int c = mix.mixed_counts[rng() % 10];
      if (rng() % 10 == 0) c = 0;
      counts.push_back(c);
      ctx.push_back(c + (rng() % 3 == 0 ? 0 : static_cast<int>(rng() % mix.mixed_spread)));
    }
  }
  const int num_seqs = static_cast<int>(counts.size());
  std::vector<int> order(num_seqs);
  for (int s = 0; s < num_seqs; ++s) order[s] = s;
  std::shuffle(order.begin(), order.end(), rng);
  b.query_start.assign(num_seqs, 0);
  b.query_count = counts;
  b.context_len = ctx;
  int row = family == 1 ? 0 : static_cast<int>(rng() % 3);
  for (int s : order) {
    b.query_start[s] = row;
    row += counts[s] + (family == 1 ? 0 : static_cast<int>(rng() % 3));  // unowned rows between
  }
  b.total_rows = row;
  int widest = 0;
  for (int c : ctx) widest = std::max(widest, (c + b.block_size - 1) / b.block_size);
  b.max_blocks = widest + static_cast<int>(rng() % 2);
  if (rng() % 4 == 0) {  // a graph's width
    b.max_blocks = std::max(b.max_blocks, (rng() % 2 ? mix.graph_width[0] : mix.graph_width[1]) / b.block_size);
  }
  fill_tables(b, rng, static_cast<int>(rng() % 6));
  const int special = static_cast<int>(rng() % mix.special_one_in);
  const int s = static_cast<int>(rng() % num_seqs);
  if (special == 0) {  // a bad block id
    const int n = (b.context_len[s] + b.block_size - 1) / b.block_size;
    if (n > 0) {
      b.tables[static_cast<size_t>(s) * b.max_blocks + rng() % n] = rng() % 2 ? -1 : b.num_blocks + 3;
      b.kind += " bad-block";
    }
  } else if (special == 1 && b.query_count[s] > 0) {  // more queries than context
    b.context_len[s] = b.query_count[s] - 1;
    b.kind += " inconsistent";
  } else if (special == 2) {  // a context longer than the table holds
    b.context_len[s] = b.max_blocks * b.block_size + 1;
    b.kind += " too-long";
  } else if (special == 3 && num_seqs > 1 && b.query_count[s] > 0) {  // overlapping rows (bad input)
    const int o = (s + 1) % num_seqs;
    if (b.query_count[o] > 0) {
      b.query_start[o] = b.query_start[s];
      b.kind += " overlap";
    }
  }
  b.scale = rng() % 4 == 0 ? 0.05f + 0.5f * static_cast<float>(rng() % 1000) / 1000.f
                           : 1.f / std::sqrt(static_cast<float>(head_dim));
  return b;
}

}  // namespace

#endif  // OPT_EMU_COMMON_ATTENTION_REF_H
