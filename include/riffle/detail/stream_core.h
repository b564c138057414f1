// StreamCore: the state a Stream shares with its subscriptions, so that a subscription that
// outlives its Stream object never touches freed memory (it sees `deleted` and ends).
//
//   Stream (facade: validation, the AWS-shaped calls)
//     └─ shared_ptr<StreamCore> ── ShardSet (routing snapshots, shards, their logs, expiry)
//                                 ├─ WakeSignal (sleeping subscribers, one futex word)
//                                 └─ FanOut (consumers, gates, blocked puts, read budget;
//                                            src/stream/fanout.h)
//   Subscription ── shared_ptr<StreamCore>, shared_ptr<ShardState>
//
// Thread safety: the fields are immutable after construction except the atomics and what
// the parts guard themselves.
#ifndef RIFFLE_DETAIL_STREAM_CORE_H_
#define RIFFLE_DETAIL_STREAM_CORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "riffle/clock.h"
#include "riffle/detail/shard_set.h"
#include "riffle/hash_key.h"
#include "riffle/sequence_number.h"

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

namespace riffle::detail {

class FanOut;
struct FanOutDeleter {
  void operator()(FanOut* f) const;
};

// Blocked subscriptions (WaitStrategy::kBlock) count themselves in `sleepers`, then sleep on
// `word`. A put reads the count (one load) and wakes only when it is non-zero. seq_cst
// pairs with the log's seq_cst claim so that a subscriber that saw no claim is seen by the
// producer that claims next (no lost wake-up).
struct WakeSignal {
  alignas(64) std::atomic<uint32_t> sleepers{0};
  std::atomic<uint32_t> word{0};
  void WakeAll();  // src/stream/fanout.cc
};

struct StreamCore {
  StreamCore(std::string name_in, RoutingMode routing_in, uint64_t max_record_bytes_in,
             int64_t iterator_lifetime_ms_in, Clock* clock_in, uint64_t tag_in, uint64_t secret_in,
             uint64_t ring_bytes, int64_t retention_ms, bool single_producer)
      : name(std::move(name_in)),
        routing(routing_in),
        max_record_bytes(max_record_bytes_in),
        iterator_lifetime_ms(iterator_lifetime_ms_in),
        clock(clock_in),
        tag(tag_in),
        secret(secret_in),
        shards(ring_bytes, secret_in, retention_ms, single_producer) {}

  const std::string name;
  const RoutingMode routing;
  const uint64_t max_record_bytes;
  const int64_t iterator_lifetime_ms;
  Clock* const clock;
  // The process's SystemClock: the put path reads it inline (no virtual call).
  const bool system_clock = clock == &SystemClock::Default();
  const uint64_t tag;     // in every sequence number and iterator of the stream
  const uint64_t secret;  // keys frame checks and iterator checks
  ShardSet shards;
  WakeSignal wake;
  std::unique_ptr<FanOut, FanOutDeleter> fanout;
  // Set when the Stream object is destroyed: subscriptions still running end.
  std::atomic<bool> deleted{false};

  // ---- Identity and the write limit: set once by Stream::Create, before any call ----
  std::string account_id;      // messages name it as the service does ("under account ...")
  std::string arn;             // arn:aws:kinesis:<region>:<account>:stream/<name>
  bool write_limited = false;  // StreamOptions::write_limit is set: puts charge FanOut

  // The arrival time a put stamps: the TSC path when the clock is the system's.
  int64_t PutTimeMillis() const {
    return system_clock ? TscWallClock::NowMillis() : clock->NowMillis();
  }

  SequenceNumber MakeSequenceNumber(uint64_t shard, uint64_t position, uint64_t index) const {
    return SequenceNumber{tag, shard, position, index};
  }

  // The check of an iterator's other fields; only this stream can make it.
  uint64_t IteratorCheck(const ShardIterator& it) const {
    const uint64_t fields[7] = {it.stream_tag,
                                it.shard_index,
                                it.position,
                                it.next_record_index,
                                it.next_record_index_known ? uint64_t{1} : uint64_t{0},
                                static_cast<uint64_t>(it.issued_at_ms),
                                static_cast<uint64_t>(it.arrival_floor_ms)};
    return XXH3_64bits_withSeed(fields, sizeof(fields), secret);
  }
  ShardIterator MakeIterator(uint64_t shard, uint64_t position, uint64_t next_index, bool known,
                             int64_t now_ms, int64_t arrival_floor_ms = INT64_MIN) const {
    ShardIterator it{tag, shard, position, next_index, known, now_ms, arrival_floor_ms, 0};
    it.check = IteratorCheck(it);
    return it;
  }
};

}  // namespace riffle::detail

#endif  // RIFFLE_DETAIL_STREAM_CORE_H_
