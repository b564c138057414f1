// The streams of an account: one StreamEntry per stream (the riffle::Stream and what the
// service keeps beside it: lifecycle, mode, tags, encryption, monitoring, rolling quotas,
// ON_DEMAND metering), found by name, ARN or iterator tag.
//
// Lookups take no lock: the registry is an immutable snapshot swapped on create and
// delete, and a replaced snapshot is retired through the epoch domain (detail/epoch.h), so
// a caller that found an entry inside an EpochGuard may use it until it leaves the guard.
// An entry lives while a snapshot holds it: deleting a stream unpublishes it, and the
// Stream is destroyed once no caller can still be inside it.
//
// Thread safety: Find* from any thread inside an EpochGuard; everything else holds mu().
#ifndef RIFFLE_ACCOUNT_KINESIS_REGISTRY_H_
#define RIFFLE_ACCOUNT_KINESIS_REGISTRY_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "riffle/stream.h"

namespace riffle::detail {

// Events on the clock, at most `max` in any window of `window_ms` (the rolling 24-hour
// quotas). The owner guards it.
class RollingWindow {
 public:
  // True if fewer than `max` events happened in the window that ends at `now_ms`.
  bool Allows(int64_t now_ms, int64_t window_ms, std::size_t max);
  void Add(int64_t now_ms) { times_.push_back(now_ms); }
  // Allows() then Add().
  bool TryAdd(int64_t now_ms, int64_t window_ms, std::size_t max) {
    if (!Allows(now_ms, window_ms, max)) return false;
    Add(now_ms);
    return true;
  }

 private:
  std::deque<int64_t> times_;
};

// ON_DEMAND capacity: the stream's accepted write throughput per clock second, and the peak
// second of the trailing 30 days (per day, so that the window slides). The owner guards it.
class OnDemandMeter {
 public:
  // Adds accepted writes at `now_ms`. True when a clock second closed (its throughput now
  // counts towards the peak: the stream's capacity target may have grown).
  bool Add(int64_t now_ms, uint64_t bytes, uint64_t records);
  // The peak second of the 30 days before `now_ms` (whole seconds only).
  void Peak(int64_t now_ms, uint64_t* bytes, uint64_t* records) const;

 private:
  struct Day {
    int64_t day = INT64_MIN;
    uint64_t bytes = 0;
    uint64_t records = 0;
  };
  int64_t second_ = INT64_MIN;
  uint64_t bytes_ = 0;
  uint64_t records_ = 0;
  std::array<Day, 31> days_{};
};

struct StreamEntry {
  StreamEntry(std::unique_ptr<Stream> stream_in, StreamMode mode_in, int64_t active_at_ms_in)
      : stream(std::move(stream_in)),
        name(stream->name()),
        arn(stream->arn()),
        tag(stream->stream_tag()),
        active_at_ms(active_at_ms_in),
        timed(active_at_ms_in != INT64_MIN),
        mode(mode_in) {}

  const std::unique_ptr<Stream> stream;
  const std::string& name;
  const std::string& arn;
  const uint64_t tag;
  const int64_t active_at_ms;  // CREATING before it (INT64_MIN: created ACTIVE)
  // DELETING until it, then gone (INT64_MAX: not deleted).
  std::atomic<int64_t> deleted_at_ms{INT64_MAX};
  // Its deletion has finished: gone for every call, and it holds no quota (the registry
  // keeps it until a sweep).
  bool GoneAt(int64_t now_ms) const {
    return now_ms >= deleted_at_ms.load(std::memory_order_acquire);
  }
  // CREATING or DELETING may matter: the data path must read the clock.
  std::atomic<bool> timed;
  // UPDATING because of an account-side change (encryption, mode) until it.
  std::atomic<int64_t> updating_until_ms{INT64_MIN};
  std::atomic<EncryptionType> encryption{EncryptionType::kNone};
  // A change of encryption applies to writes once the stream is ACTIVE again: until this
  // time (INT64_MIN: no change yet) writes keep encryption_before.
  std::atomic<int64_t> encryption_effective_ms{INT64_MIN};
  std::atomic<EncryptionType> encryption_before{EncryptionType::kNone};
  std::atomic<StreamMode> mode;

  std::mutex mu;  // guards what follows
  std::string key_id;
  std::map<std::string, std::string> tags;
  std::vector<ShardLevelMetric> metrics;  // enabled, in enum order
  RollingWindow shard_count_updates;      // UpdateShardCount: 10 per 24 h
  RollingWindow mode_switches;            // UpdateStreamMode: 2 per 24 h
  RollingWindow encryption_changes;       // Start/StopStreamEncryption: 25 per 24 h
  OnDemandMeter meter;
  // Deregistered consumers, DELETING until gone_at_ms (the account's delete_duration): the
  // Stream has forgotten them; the account still describes and lists them.
  struct DeletingConsumer {
    ConsumerDescription description;
    int64_t gone_at_ms;
  };
  std::vector<DeletingConsumer> deleting_consumers;
};

// What an account call may do with a stream in each state (the service's rules).
enum class StreamAccess {
  kDescribe,  // any state
  kData,      // not CREATING (ResourceNotFoundException); DELETING still reads and writes
  kModify,    // ACTIVE or UPDATING (ResourceInUseException otherwise)
};

// The last stream this thread found by name: producers name the same stream call after
// call, and a hit costs a compare of the name instead of hashing it. Valid only for the
// snapshot of that generation (a generation is never reused), so that a create or delete
// since is a miss.
struct LastFoundStream {
  uint64_t generation = 0;
  std::size_t length = 0;
  char name[128];
  StreamEntry* entry = nullptr;
};
inline constinit thread_local LastFoundStream tls_last_found_stream{};

// Names are short: a loop the compiler keeps inline beats a call to memcmp.
inline bool SameChars(const char* a, std::string_view b) {
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

class KinesisRegistry {
 public:
  KinesisRegistry();
  ~KinesisRegistry();

  // REQUIRE an EpochGuard for as long as the result is used.
  StreamEntry* FindByName(std::string_view name) const {
    const Snapshot& s = *current_.load(std::memory_order_acquire);
    const LastFoundStream& last = tls_last_found_stream;
    if (last.generation == s.generation && last.length == name.size() && SameChars(last.name, name))
        [[likely]] {
      return last.entry;
    }
    return FindByNameSlow(s, name);
  }
  StreamEntry* FindByTag(uint64_t tag) const;
  // Every entry, by name.
  std::vector<std::shared_ptr<StreamEntry>> All() const;

  std::mutex& mu() { return mu_; }
  // REQUIRE mu().
  void Add(std::shared_ptr<StreamEntry> entry);
  void Remove(const StreamEntry& entry);
  // The name of a deleted stream that had `tag` (recent ones only).
  std::optional<std::string> DeletedName(uint64_t tag) const;

 private:
  struct Snapshot {
    absl::flat_hash_map<std::string, std::shared_ptr<StreamEntry>> by_name;
    absl::flat_hash_map<uint64_t, StreamEntry*> by_tag;
    uint64_t generation = 0;  // unique in the process: names this snapshot in thread caches
  };
  void Publish(Snapshot* next);  // REQUIRES mu_
  static StreamEntry* FindByNameSlow(const Snapshot& s, std::string_view name);

  std::atomic<const Snapshot*> current_;
  std::mutex mu_;
  mutable std::mutex deleted_mu_;
  std::deque<std::pair<uint64_t, std::string>> deleted_;  // guarded by deleted_mu_; bounded
};

}  // namespace riffle::detail

#endif  // RIFFLE_ACCOUNT_KINESIS_REGISTRY_H_
