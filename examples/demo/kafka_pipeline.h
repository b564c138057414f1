// The demo's pipeline on a Kafka-backed stream (riffle-demo --kafka mock|HOST:PORT): the same
// producers, verifying readers and consumers, and the same summary, with the stream built by
// riffle::kafka instead of in process.
#ifndef RIFFLE_EXAMPLES_DEMO_KAFKA_PIPELINE_H_
#define RIFFLE_EXAMPLES_DEMO_KAFKA_PIPELINE_H_

#include <cstddef>
#include <cstdint>
#include <string>

namespace demo {

struct KafkaPipelineFlags {
  std::string kafka;  // "mock" (an in-process mock cluster) or bootstrap servers
  int producers = 2;
  int shards = 4;
  int readers = 2;
  int efo_consumers = 0;  // not on Kafka (no push subscriptions): reported as skipped
  int kcl_consumers = 1;
  uint64_t records = 0;
  std::size_t record_bytes = 100;
  int keys_per_producer = 64;
  bool json = false;
};

// Runs the pipeline and prints the summary; returns the demo's exit status (0: nothing lost,
// reordered or corrupt; 1 otherwise; 2 when this build has no riffle::kafka).
int RunKafkaPipeline(const KafkaPipelineFlags& flags);

}  // namespace demo

#endif  // RIFFLE_EXAMPLES_DEMO_KAFKA_PIPELINE_H_
