// The demo's pipeline through a riffle::Account (--account): the stream is created and
// named as on the service, producers put with PutRecords by stream name and retry what the
// service refuses, polling readers read by the iterator strings GetShardIterator and
// GetRecords hand out, and reshards go through SplitShard and MergeShards by name. With
// --limits the account enforces the service's limits, so producers are throttled (1,000
// records/s per shard) and visibly retry, and readers share 5 reads/s per shard. With --out
// the stream is delivered by a KinesisStreamAsSource delivery stream of the account into a
// bucket backed by the output directory.
#ifndef RIFFLE_EXAMPLES_DEMO_ACCOUNT_PIPELINE_H_
#define RIFFLE_EXAMPLES_DEMO_ACCOUNT_PIPELINE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "riffle/account.h"
#include "verifier.h"

namespace demo {

class AccountPipeline {
 public:
  // Creates the account and the stream `name` of `shards` shards on it (each stream starts
  // from `defaults`). Exits the demo on error.
  AccountPipeline(const std::string& name, int shards, const riffle::StreamOptions& defaults,
                  bool limits);

  // The Stream behind the name, for what reads a stream in process (consumers, the delivery
  // stream's source).
  riffle::Stream& stream() { return *stream_; }

  // Creates the bucket "riffle-demo-out" backed by `directory` and the KinesisStreamAsSource
  // delivery stream `delivery_name` reading the stream into it (GZIP objects with `gzip`),
  // delivering on its own thread; returns the DeliveryStream behind it (its metrics, Close),
  // owned by the account. Exits the demo on error.
  riffle::DeliveryStream* DeliverToBucket(const std::string& delivery_name,
                                          const std::string& directory, bool gzip);

  // Producer `producer`: `share` records over its keys (record i uses key i mod keys, as
  // the in-process producers), put in PutRecords batches of one record per key so that a
  // refused entry is never overtaken by a later record of its key. Refused entries and
  // calls are retried after an exponential backoff.
  void Produce(int producer, uint64_t share, int keys_per_producer, std::size_t record_bytes,
               std::atomic<uint64_t>& put, std::atomic<uint64_t>& put_errors);

  // A polling reader of the whole stream by iterator strings, each shard started once its
  // parents (ListShards' lineage) are read to their end, until the producers are done and
  // it has caught up.
  // Until `writes_done` (producers and resharder) and caught up.
  void Read(const std::atomic<bool>& writes_done, OrderVerifier& verifier, uint64_t* missed);

  // Splits and merges by name while the producers run (as the in-process resharder).
  int Reshard(const std::atomic<bool>& producers_done, int shards);

  // Entries the service refused (throttled or failed) and put calls retried because of them.
  uint64_t refused_entries() const { return refused_.load(std::memory_order_relaxed); }
  uint64_t retried_calls() const { return retried_.load(std::memory_order_relaxed); }

 private:
  const std::string name_;
  std::unique_ptr<riffle::Account> account_;
  riffle::Stream* stream_ = nullptr;
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> retried_{0};
};

}  // namespace demo

#endif  // RIFFLE_EXAMPLES_DEMO_ACCOUNT_PIPELINE_H_
