// The README's example, compiled and run as a test so that it stays true.
#include <cstdio>
#include <string_view>

#include "riffle/stream.h"

namespace {
void Handle(std::string_view key, std::string_view data) {
  std::printf("%.*s -> %.*s\n", static_cast<int>(key.size()), key.data(),
              static_cast<int>(data.size()), data.data());
}
}  // namespace

int main() {
  riffle::ManualClock clock;  // or leave options.clock unset for the system clock
  riffle::StreamOptions options;
  options.stream_name = "orders";
  options.shard_count = 4;
  options.clock = &clock;
  auto stream = riffle::Stream::Create(options).value();

  auto put = stream->PutRecord("customer-42", "{\"total\":12.5}");
  std::printf("%s %s\n", std::string(put->shard_id).c_str(),
              put->sequence_number.ToString().c_str());

  auto it = stream->GetShardIterator(
      {.shard_id = put->shard_id, .type = riffle::ShardIteratorType::kTrimHorizon});
  riffle::GetRecordsResult batch;  // reuse it: steady-state reads allocate nothing
  if (absl::Status s = stream->GetRecords(*it, batch); !s.ok()) {
    if (riffle::IsExpiredIteratorException(s)) { /* take a new iterator */
    }
  }
  for (const riffle::Record& r : batch.records) Handle(r.partition_key, r.data);
  clock.Advance(absl::Minutes(6));  // the iterator has now expired, as on the service
  const absl::Status expired = stream->GetRecords(*it, batch);
  const std::string_view name = riffle::ErrorName(expired);
  std::printf("%.*s\n", static_cast<int>(name.size()), name.data());
  return riffle::HasErrorName(expired, riffle::kExpiredIteratorException) ? 0 : 1;
}
