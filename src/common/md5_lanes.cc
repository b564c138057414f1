// Md5Jobs: picks the widest lanes the processor has, then finishes stragglers with the
// scalar MD5.
#include "common/md5_lanes.h"

#include <algorithm>
#include <cassert>

#include "common/md5_lanes_impl.h"
#include "riffle/detail/md5.h"

namespace riffle::detail {

#if defined(__x86_64__)
// Hash the jobs of both arrays but (at most 34) unfinished ones, whose pointers they write to
// `unfinished` and whose number they return: the scalar MD5 finishes those.
size_t Md5JobsAvx2(Md5Job* jobs, size_t count, Md5Job* more, size_t more_count,
                   Md5Job** unfinished);  // md5_lanes_avx2.cc
size_t Md5JobsAvx512(Md5Job* jobs, size_t count, Md5Job* more, size_t more_count,
                     Md5Job** unfinished);  // md5_lanes_avx512.cc
#endif

namespace {

int DetectLanes() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")) return 32;
  if (__builtin_cpu_supports("avx2")) return 16;
#endif
  return 1;
}

// Finishes a job from where the lanes left it (or from the start).
void FinishScalar(Md5Job& job) {
  const size_t total = PaddedBlocks(job.size);
  if (job.blocks_done >= total) return;
  alignas(64) unsigned char tail[128];
  const uint32_t* from = job.blocks_done == 0 ? kMd5Iv : job.state;
  riffle::detail::Md5State s{from[0], from[1], from[2], from[3]};
  BuildTail(job.data, job.size, tail);
  for (; job.blocks_done < total; ++job.blocks_done) {
    riffle::detail::Md5Compress(s, BlockAt(job, tail, job.blocks_done));
  }
  job.state[0] = s.a;
  job.state[1] = s.b;
  job.state[2] = s.c;
  job.state[3] = s.d;
}

}  // namespace

int Md5Lanes() {
  static const int lanes = DetectLanes();
  return lanes;
}

int Md5JobsWith(int lanes, Md5Job* jobs, size_t count, Md5Job* more, size_t more_count) {
  assert(std::all_of(more, more + more_count, [](const Md5Job& j) { return j.size <= 55; }));
  // One job gains nothing from lanes.
  if (count + more_count > 1) {
#if defined(__x86_64__)
    const int available = Md5Lanes();
    Md5Job* unfinished[64];
    size_t n = 0;
    int used = 1;
    if (lanes >= 32 && available >= 32) {
      n = Md5JobsAvx512(jobs, count, more, more_count, unfinished);
      used = 32;
    } else if (lanes >= 16 && available >= 16) {
      n = Md5JobsAvx2(jobs, count, more, more_count, unfinished);
      used = 16;
    }
    if (used > 1) {
      for (size_t i = 0; i < n; ++i) FinishScalar(*unfinished[i]);
      return used;
    }
#endif
  }
  for (size_t i = 0; i < count; ++i) FinishScalar(jobs[i]);
  for (size_t i = 0; i < more_count; ++i) FinishScalar(more[i]);
  return 1;
}

void Md5Jobs(Md5Job* jobs, size_t count, Md5Job* more, size_t more_count) {
  Md5JobsWith(Md5Lanes(), jobs, count, more, more_count);
}

}  // namespace riffle::detail
