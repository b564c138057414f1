// Routing: riffle's inline MD5 against OpenSSL's ways of computing the same digest, the
// per-thread hash key cache, XXH3-128 routing and partition key validation.
//   build/release/benchmarks/riffle_bench
//   --benchmark_filter='BM_Md5_|BM_Xxh3_|BM_Validate|BM_Route_'
#define OPENSSL_SUPPRESS_DEPRECATED  // MD5() is measured on purpose: it is the fast peer.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/md5.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "riffle/detail/hash_key_cache.h"
#include "riffle/hash_key.h"

namespace {

// 1024 distinct 16-byte keys, cycled so that nothing is hoisted out of the loop.
std::vector<std::string> MakeKeys(size_t count, size_t length, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> keys;
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
  for (size_t i = 0; i < count; ++i) {
    std::string k(length, ' ');
    for (auto& c : k) c = kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
    keys.push_back(std::move(k));
  }
  return keys;
}

const std::vector<std::string>& Keys16() {
  static const auto keys = MakeKeys(1024, 16, 1);
  return keys;
}

riffle::HashKey FromDigest(const unsigned char* md) {
  uint64_t high, low;
  std::memcpy(&high, md, 8);
  std::memcpy(&low, md + 8, 8);
  return absl::MakeUint128(__builtin_bswap64(high), __builtin_bswap64(low));
}

template <typename F>
void RunOverKeys(benchmark::State& state, const std::vector<std::string>& keys, F&& hash) {
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(hash(keys[i]));
    i = (i + 1) & (keys.size() - 1);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Md5_Riffle(benchmark::State& state) {
  RunOverKeys(state, Keys16(), [](const std::string& k) { return riffle::Md5HashKey(k); });
}
BENCHMARK(BM_Md5_Riffle);

// OpenSSL's fastest way measured here: the low-level one-shot MD5(), deprecated in 3.0.
void BM_Md5_OpenSSL(benchmark::State& state) {
  RunOverKeys(state, Keys16(), [](const std::string& k) {
    unsigned char md[MD5_DIGEST_LENGTH];
    MD5(reinterpret_cast<const unsigned char*>(k.data()), k.size(), md);
    return FromDigest(md);
  });
}
BENCHMARK(BM_Md5_OpenSSL);

// The non-deprecated one-shot: EVP_Digest creates and frees an EVP_MD_CTX per call.
void BM_Md5_OpenSSL_EvpDigest(benchmark::State& state) {
  RunOverKeys(state, Keys16(), [](const std::string& k) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(k.data(), k.size(), md, &len, EVP_md5(), nullptr);
    return FromDigest(md);
  });
}
BENCHMARK(BM_Md5_OpenSSL_EvpDigest);

// The non-deprecated path without per-call allocation: a context reused per thread and an
// explicitly fetched MD5 implementation (no provider lookup per call).
void BM_Md5_OpenSSL_EvpReused(benchmark::State& state) {
  EVP_MD* md5 = EVP_MD_fetch(nullptr, "MD5", nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  RunOverKeys(state, Keys16(), [&](const std::string& k) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestInit_ex2(ctx, md5, nullptr);
    EVP_DigestUpdate(ctx, k.data(), k.size());
    EVP_DigestFinal_ex(ctx, md, &len);
    return FromDigest(md);
  });
  EVP_MD_CTX_free(ctx);
  EVP_MD_free(md5);
}
BENCHMARK(BM_Md5_OpenSSL_EvpReused);

// 64 hot keys, each in its own cache slot: every lookup after the first round is a hit.
void BM_Md5_CachedHit(benchmark::State& state) {
  std::vector<std::string> hot;
  std::vector<bool> taken(riffle::detail::Md5HashKeyCache::kEntries);
  for (const auto& k : MakeKeys(4096, 16, 2)) {
    const size_t slot = riffle::detail::Md5HashKeyCache::IndexOf(k);
    if (taken[slot]) continue;
    taken[slot] = true;
    hot.push_back(k);
    if (hot.size() == 64) break;
  }
  RunOverKeys(state, hot, [](const std::string& k) { return riffle::detail::CachedMd5HashKey(k); });
}
BENCHMARK(BM_Md5_CachedHit);

// 1024 keys through 256 slots: mostly misses, the cache's worst case.
void BM_Md5_CachedMiss(benchmark::State& state) {
  RunOverKeys(state, Keys16(),
              [](const std::string& k) { return riffle::detail::CachedMd5HashKey(k); });
}
BENCHMARK(BM_Md5_CachedMiss);

void BM_Xxh3_128(benchmark::State& state) {
  RunOverKeys(state, Keys16(), [](const std::string& k) { return riffle::Xxh3HashKey(k); });
}
BENCHMARK(BM_Xxh3_128);

void BM_ValidatePartitionKey(benchmark::State& state) {
  RunOverKeys(state, Keys16(),
              [](const std::string& k) { return riffle::ValidatePartitionKey(k).ok(); });
}
BENCHMARK(BM_ValidatePartitionKey);

// Non-ASCII keys (16 x U+00E9, 32 bytes) take the code point counting path.
void BM_ValidatePartitionKey_Utf8(benchmark::State& state) {
  std::vector<std::string> keys(1024);
  for (size_t i = 0; i < keys.size(); ++i) {
    for (int c = 0; c < 15; ++c) keys[i] += "\xC3\xA9";
    keys[i] += static_cast<char>('A' + i % 26);
  }
  RunOverKeys(state, keys,
              [](const std::string& k) { return riffle::ValidatePartitionKey(k).ok(); });
}
BENCHMARK(BM_ValidatePartitionKey_Utf8);

// Hash key -> shard for a 64-shard uniform stream: the multiply against a binary search of
// the range starts (what a general, resharded layout needs).
std::vector<riffle::HashKey> RandomHashKeys() {
  std::vector<riffle::HashKey> keys;
  for (const auto& k : Keys16()) keys.push_back(riffle::Xxh3HashKey(k));
  return keys;
}

void BM_Route_UniformLayout(benchmark::State& state) {
  const riffle::UniformLayout layout(64);
  const auto keys = RandomHashKeys();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(layout.ShardIndex(keys[i]));
    i = (i + 1) & (keys.size() - 1);
  }
}
BENCHMARK(BM_Route_UniformLayout);

void BM_Route_BinarySearch(benchmark::State& state) {
  std::vector<riffle::HashKey> starts;
  for (const auto& r : riffle::UniformHashKeyRanges(64)) starts.push_back(r.starting_hash_key);
  const auto keys = RandomHashKeys();
  size_t i = 0;
  for (auto _ : state) {
    const auto it = std::upper_bound(starts.begin(), starts.end(), keys[i]);
    benchmark::DoNotOptimize(it - starts.begin() - 1);
    i = (i + 1) & (keys.size() - 1);
  }
}
BENCHMARK(BM_Route_BinarySearch);

}  // namespace
