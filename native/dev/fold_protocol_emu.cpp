// CPU emulation of linear_small_norm_kernel's last-block protocol (review of 35b283a; not built by Maven).
//
//   g++ -O2 -std=c++17 native/dev/fold_protocol_emu.cpp -o target/fold_protocol_emu && target/fold_protocol_emu
//
// Each block is a little program (the kernel's steps that touch global state):
//   PRE    before chain_wait: weight prefetch only (may run while the previous launch is still running: PDL)
//   READ   pass 1: reads the old residual x (the whole row, as version numbers: x's version = launches done)
//   COUNT  thread 0: old = atomicAdd(counter, 1); last = old == grid - 1
//   WRITE  last block only: x = new residual (version + 1), out = LN(x)
//   RESET  last block only: counter = 0
//   PROD   the product (reads shared memory only)
// A scheduler interleaves the blocks' steps at random (sequentially consistent: what the fences buy, see the
// report), launches one after another on one counter with random grid sizes; a launch's blocks past PRE only run
// after every block of the launch before has finished (chain_wait / kernel boundary). Checks, per launch: every
// READ saw the old x, x written exactly once and after all reads, exactly one last block, counter 0 at the end.
// Mutations show what check_ops' fold group (x bits + counter after each launch) would and would not catch.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

enum Mutation { kNone, kNoReset, kWrongCompare, kWriterIsBlock0 };

struct Result {
  long launches = 0, bad_reads = 0, bad_writes = 0, bad_last = 0, bad_counter = 0;
  long check_ops_would_flag = 0;  // launches where x bits or the counter differ from the unfused run
};

static Result run(Mutation mut, int launches, std::mt19937& rng) {
  Result res;
  int counter = 0;    // the device int, shared by every launch
  int x_version = 0;  // how many residual writes have happened
  std::uniform_int_distribution<int> grid_d(1, 40);
  for (int L = 0; L < launches; ++L) {
    const int grid = grid_d(rng);
    std::vector<int> pc(grid, 0), last(grid, 0), read_seen(grid, -1);
    int writes = 0, reads_done = 0, writes_before_all_reads = 0, lasts = 0;
    const int old_version = x_version;
    int live = grid;
    std::uniform_int_distribution<int> pick(0, grid - 1);
    while (live > 0) {
      const int b = pick(rng);  // any block may run its next step: any block order, any interleaving
      switch (pc[b]) {
        case 0:  // PRE (prefetch; under PDL this may overlap the previous launch: it touches nothing)
          break;
        case 1:  // READ: pass 1 reads the old residual
          read_seen[b] = x_version;
          ++reads_done;
          break;
        case 2: {  // COUNT (after block_sum's barriers and thread 0's fence)
          const int old = counter++;
          bool is_last = old == (mut == kWrongCompare ? grid : grid - 1);
          if (mut == kWriterIsBlock0) is_last = b == 0;
          last[b] = is_last;
          lasts += is_last;
          break;
        }
        case 3:  // WRITE (last block, after its fence)
          if (last[b]) {
            if (reads_done < grid) ++writes_before_all_reads;
            ++x_version;
            ++writes;
          }
          break;
        case 4:  // RESET
          if (last[b] && mut != kNoReset) counter = 0;
          break;
        case 5:  // PROD, exit
          --live;
          break;
        default:
          continue;  // finished
      }
      ++pc[b];
    }
    int stale = 0;
    for (int b = 0; b < grid; ++b) stale += read_seen[b] != old_version;
    res.launches++;
    res.bad_reads += stale;
    res.bad_writes += writes != 1 || writes_before_all_reads != 0;
    res.bad_last += lasts != 1;
    res.bad_counter += counter != 0;
    // check_ops' fold group: x's bits (written exactly once, from the old x), the counter, and the norm/product
    // within tolerance (a block that read the new x computes another norm: caught with high probability)
    res.check_ops_would_flag += writes != 1 || counter != 0 || stale != 0;
    x_version = old_version + 1;  // the next launch's "old x" as the unfused path would have it
  }
  return res;
}

// The kReadAfterCount mutation needs a block whose count has run but whose read has not: a separate, simpler
// model. Blocks: READ and COUNT in either order (no fence), then the last counter-holder WRITEs at once.
static long read_after_count_violations(int trials, std::mt19937& rng) {
  long bad = 0;
  for (int t = 0; t < trials; ++t) {
    const int grid = 2 + static_cast<int>(rng() % 30);
    std::vector<int> order;  // 2 events per block: 2b = READ, 2b+1 = COUNT
    for (int b = 0; b < grid; ++b) {
      order.push_back(2 * b);
      order.push_back(2 * b + 1);
    }
    std::shuffle(order.begin(), order.end(), rng);  // any order: READ may follow COUNT
    int counter = 0, version = 0;
    std::vector<int> seen(grid, -1);
    for (int e : order) {
      const int b = e / 2;
      if (e % 2 == 0) {
        seen[b] = version;
      } else if (counter++ == grid - 1) {
        version = 1;  // the last block writes the new x right away
      }
    }
    for (int b = 0; b < grid; ++b) bad += seen[b] != 0;
  }
  return bad;
}

int main() {
  std::mt19937 rng(12345);
  const char* names[] = {"as committed", "no counter reset", "compare with grid (not grid-1)",
                         "block 0 writes (not the last)"};
  int failures = 0;
  for (int m = kNone; m <= kWriterIsBlock0; ++m) {
    const Result r = run(static_cast<Mutation>(m), 20000, rng);
    std::printf("%-32s launches %ld: stale/new reads %ld, x not written once after all reads %ld, "
                "last blocks != 1 %ld, counter != 0 after %ld; check_ops would flag %ld launches\n",
                names[m], r.launches, r.bad_reads, r.bad_writes, r.bad_last, r.bad_counter, r.check_ops_would_flag);
    if (m == kNone) failures += r.bad_reads + r.bad_writes + r.bad_last + r.bad_counter != 0;
  }
  const long v = read_after_count_violations(20000, rng);
  std::printf("%-32s reads that saw the new x: %ld (the fence + barrier before the count exclude this)\n",
              "READ reordered after COUNT", v);
  std::printf(failures == 0 ? "protocol as committed: OK\n" : "protocol as committed: FAILED\n");
  return failures == 0 ? 0 : 1;
}
