// Compiles the inline hot path (PutRecord, GetRecords, the XXH3 import) in a user's
// program against the installed riffle::stream, and checks the record comes back.
#include <cstdio>

#include "riffle/stream.h"

int main() {
  riffle::StreamOptions options;
  options.stream_name = "installed";
  options.shard_count = 2;
  options.routing = riffle::RoutingMode::kXxh3;
  auto stream = riffle::Stream::Create(options);
  if (!stream.ok()) return 1;
  auto put = (*stream)->PutRecord("key", "value");
  if (!put.ok()) return 2;
  auto it = (*stream)->GetShardIterator(
      {.shard_id = put->shard_id, .type = riffle::ShardIteratorType::kTrimHorizon});
  if (!it.ok()) return 3;
  riffle::GetRecordsResult out;
  if (!(*stream)->GetRecords(*it, out).ok() || out.records.size() != 1 ||
      out.records[0].data != "value") {
    return 4;
  }
  std::puts("riffle::stream consumer: ok");
  return 0;
}
