// Md5Jobs: picks the widest lanes the processor has, then finishes stragglers with the
// scalar MD5.
#include "common/md5_lanes.h"

#include "common/md5_lanes_impl.h"
#include "riffle/detail/md5.h"

namespace riffle::detail {

#if defined(__x86_64__)
// True when they finished every job (otherwise the scalar MD5 finishes the rest).
bool Md5JobsAvx2(Md5Job* jobs, size_t count);    // md5_lanes_avx2.cc
bool Md5JobsAvx512(Md5Job* jobs, size_t count);  // md5_lanes_avx512.cc
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

void FinishScalar(Md5Job* jobs, size_t count) {
  alignas(64) unsigned char tail[128];
  for (size_t i = 0; i < count; ++i) {
    Md5Job& job = jobs[i];
    const size_t total = PaddedBlocks(job.size);
    if (job.blocks_done >= total) continue;
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
}

}  // namespace

int Md5Lanes() {
  static const int lanes = DetectLanes();
  return lanes;
}

int Md5JobsWith(int lanes, Md5Job* jobs, size_t count) {
  int used = 1;
  bool done = false;
  // One job gains nothing from lanes.
  if (count > 1) {
#if defined(__x86_64__)
    const int available = Md5Lanes();
    if (lanes >= 32 && available >= 32) {
      done = Md5JobsAvx512(jobs, count);
      used = 32;
    } else if (lanes >= 16 && available >= 16) {
      done = Md5JobsAvx2(jobs, count);
      used = 16;
    }
#endif
  }
  if (!done) FinishScalar(jobs, count);
  return used;
}

void Md5Jobs(Md5Job* jobs, size_t count) { Md5JobsWith(Md5Lanes(), jobs, count); }

}  // namespace riffle::detail
