// DeliveryStream throughput beside its peers, on the same bytes:
//   BM_Delivery_NullSink  100-byte records through PutRecord (1 per call) or PutRecordBatch
//                         (500 per call) -> 1 MiB buffer -> Poll -> a sink that discards
//   BM_Peer_Memcpy        the same records memcpy'd one by one into a 1 MiB buffer
//   BM_Delivery_Gzip      the same path with GZIP at level 6 (compression in Poll)
//   BM_Peer_ZlibDeflate   zlib deflate (gzip wrapper, level 6) of the same bytes, 1 MiB per call
// Run: build/release/benchmarks/riffle_bench
// --benchmark_filter='BM_Delivery_|BM_Peer_Memcpy|BM_Peer_Zlib'
#include <benchmark/benchmark.h>
#include <zlib.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "riffle/delivery_stream.h"
#include "riffle/sink.h"

namespace {

constexpr size_t kRecordBytes = 100;
constexpr size_t kPool = 4096;
constexpr size_t kBufferBytes = 1 << 20;
constexpr int kLevel = 6;
constexpr size_t kPumpEveryRecords = 1000;

// JSON-ish records, compressible like typical telemetry; exactly 100 bytes each.
const std::vector<std::string>& Records() {
  static const std::vector<std::string> records = [] {
    std::vector<std::string> out;
    std::mt19937_64 rng(1);
    for (size_t i = 0; i < kPool; ++i) {
      std::string r = "{\"ts\":" + std::to_string(1767225600000 + i * 7) + ",\"user\":\"u" +
                      std::to_string(rng() % 100000) +
                      "\",\"event\":\"click\",\"value\":" + std::to_string(rng() % 1000000) + "}";
      r.resize(kRecordBytes - 1, ' ');
      r.push_back('\n');
      out.push_back(std::move(r));
    }
    return out;
  }();
  return records;
}

void RunDelivery(benchmark::State& state, riffle::CompressionFormat compression) {
  const size_t per_call = static_cast<size_t>(state.range(0));
  riffle::CallbackSink null_sink([](std::string_view, std::string_view data) {
    benchmark::DoNotOptimize(data.data());
    return absl::OkStatus();
  });
  riffle::DeliveryStreamOptions o;
  o.delivery_stream_name = "bench";
  o.sink = &null_sink;
  o.compression = compression;
  o.compression_level = kLevel;
  o.buffering_hints = {1, 900};
  auto ds = riffle::DeliveryStream::Create(std::move(o));
  if (!ds.ok()) {
    state.SkipWithError("Create failed");
    return;
  }
  const auto& records = Records();
  std::vector<std::string_view> views(records.begin(), records.end());
  riffle::PutRecordBatchResult result;
  size_t next = 0;
  size_t since_pump = 0;
  for (auto _ : state) {
    if (per_call == 1) {
      auto r = (*ds)->PutRecord(views[next]);
      benchmark::DoNotOptimize(r);
    } else {
      if (next + per_call > views.size()) next = 0;
      if (!(*ds)->PutRecordBatch(std::span(views).subspan(next, per_call), result).ok()) {
        state.SkipWithError("PutRecordBatch failed");
        break;
      }
    }
    next = (next + per_call) % views.size();
    since_pump += per_call;
    if (since_pump >= kPumpEveryRecords) {
      (*ds)->Poll();
      since_pump = 0;
    }
  }
  (void)(*ds)->Close();
  const auto m = (*ds)->GetMetrics();
  if (m.incoming_records != m.delivery_records) state.SkipWithError("records not delivered");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * per_call * kRecordBytes));
  state.counters["objects"] = static_cast<double>(m.delivery_objects);
}

void BM_Delivery_NullSink(benchmark::State& state) {
  RunDelivery(state, riffle::CompressionFormat::kUncompressed);
}
BENCHMARK(BM_Delivery_NullSink)->ArgName("records_per_call")->Arg(1)->Arg(500);

void BM_Peer_Memcpy(benchmark::State& state) {
  const auto& records = Records();
  std::string buffer(kBufferBytes + kRecordBytes, '\0');
  size_t offset = 0;
  size_t next = 0;
  for (auto _ : state) {
    std::memcpy(buffer.data() + offset, records[next].data(), kRecordBytes);
    offset += kRecordBytes;
    if (offset >= kBufferBytes) {
      benchmark::DoNotOptimize(buffer.data());
      benchmark::ClobberMemory();
      offset = 0;
    }
    next = (next + 1) % records.size();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kRecordBytes));
}
BENCHMARK(BM_Peer_Memcpy);

void BM_Delivery_Gzip(benchmark::State& state) {
  RunDelivery(state, riffle::CompressionFormat::kGzip);
}
BENCHMARK(BM_Delivery_Gzip)->ArgName("records_per_call")->Arg(500);

void BM_Peer_ZlibDeflate(benchmark::State& state) {
  // The bytes a 1 MiB delivery would hold, in the same record order.
  const auto& records = Records();
  std::string input;
  for (size_t i = 0; input.size() < kBufferBytes; ++i) input += records[i % records.size()];
  z_stream z{};
  deflateInit2(&z, kLevel, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, input.size()), '\0');
  for (auto _ : state) {
    deflateReset(&z);
    z.next_in = reinterpret_cast<Bytef*>(input.data());
    z.avail_in = static_cast<uInt>(input.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) state.SkipWithError("deflate failed");
    benchmark::DoNotOptimize(out.data());
  }
  deflateEnd(&z);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * input.size()));
}
BENCHMARK(BM_Peer_ZlibDeflate);

}  // namespace
