// DeliveryStream: the Firehose role. Takes records (PutRecord / PutRecordBatch, or read
// from a riffle::Stream), buffers them per partition by size and time, optionally
// transforms and compresses them, and writes each batch as one object to a Sink, retrying
// failures with backoff and writing what cannot be delivered to an error output.
//
//   auto ds = riffle::DeliveryStream::Create({.delivery_stream_name = "orders",
//                                             .sink = &my_sink});
//   (void)(*ds)->PutRecord("{\"id\":1}\n");
//   (*ds)->Poll();          // host-driven; or (*ds)->Start() for a delivery thread
//   (void)(*ds)->Close();   // delivers everything buffered
//
// Thread safety: every method may be called from any thread. Producers only append to a
// buffer under a short lock; processing, compression and sink I/O happen in Poll() (or on
// the delivery thread), never inside a producer call. Poll() calls are serialized.
//
// Delivery is at-least-once: every accepted record ends up in an object written to the
// sink, is dropped by the processor, or is written to the error output; none is silently
// lost (an error output that fails for 24 hours is discarded, as the service discards,
// and counted). A failed object is retried with the same key and bytes.
//
// REQUIRED: the sinks, the clock and a Stream source outlive the DeliveryStream; the error
// sink eventually accepts writes (Close() waits for it). Callbacks (processor, sinks) may
// put records, but a Poll(), Flush() or Stop() they make on this DeliveryStream does
// nothing, and Close() or UpdateDestination() is ResourceInUseException: each would wait
// for the callback that calls it.
#ifndef RIFFLE_DELIVERY_STREAM_H_
#define RIFFLE_DELIVERY_STREAM_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/time/time.h"
#include "riffle/clock.h"
#include "riffle/sink.h"
#include "riffle/status.h"
#include "riffle/user_record.h"

namespace riffle {

class RecordSource;

// Firehose limits.
inline constexpr size_t kMaxDeliveryRecordBytes = 1'024'000;  // 1,000 KiB
inline constexpr size_t kMaxPutRecordBatchRecords = 500;
inline constexpr size_t kMaxPutRecordBatchBytes = 4 * 1024 * 1024;  // 4 MiB

enum class DeliveryStreamStatus { kCreating, kActive, kDeleting };
std::string_view DeliveryStreamStatusName(DeliveryStreamStatus status);  // "ACTIVE", ...

enum class CompressionFormat : int { kUncompressed, kGzip, kZip, kSnappy, kHadoopSnappy };

// Deliver a partition's batch when its records reach size_in_mbs MiB (counted before
// processing and compression) or interval_in_seconds after its first record, whichever
// comes first. 0 s delivers at the next Poll.
struct BufferingHints {
  int size_in_mbs = 5;            // Default 5; 1..128.
  int interval_in_seconds = 300;  // Default 300; 0..900.
};

// Backoff for failed deliveries: initial_backoff doubling up to max_backoff, each delay
// drawn uniformly from [d/2, d] (jitter), until duration_in_seconds after the first attempt;
// then the batch's records go to the error output as "delivery-failed".
struct RetryOptions {
  int duration_in_seconds = 300;                      // Default 300; 0..7200. 0: one attempt.
  absl::Duration initial_backoff = absl::Seconds(1);  // Default 1 s; > 0.
  absl::Duration max_backoff = absl::Seconds(30);     // Default 30 s; >= initial_backoff.
};

// Sources. DirectPut accepts PutRecord/PutRecordBatch. A Stream source reads every open
// shard of `stream` from LATEST as of Create (what was put before is not delivered), follows
// resharding through the lineage engine (a child shard is read from its first record once
// all its parents are read to their end; what was trimmed before counts in
// source_records_missed) and refuses direct puts. Any RecordSource works: riffle::Stream,
// or another backend. See docs/delivery.md, "Stream source".
struct DirectPutSource {};
struct StreamSource {
  RecordSource* stream = nullptr;  // REQUIRED non-null; not owned.
  // Not owned; must outlive the delivery stream. When set (a riffle::kpl::Deaggregator),
  // each record read is ingested as its user records, as Firehose de-aggregates KPL
  // aggregates read from a Kinesis source: every user record is one record of the delivery
  // stream, with the Kinesis record's sequence number and arrival time. No shard range is
  // checked (nothing is dropped). Default nullptr: records as they were put.
  const UserRecordDecoder* deaggregator = nullptr;
};

// What processors and partition key functions see about a record. For DirectPut the
// partition key, shard id and sequence number are empty.
struct RecordMetadata {
  std::string_view partition_key;
  std::string_view shard_id;
  std::string_view sequence_number;
  int64_t approximate_arrival_timestamp_ms = 0;
  // A user record unpacked from a KPL aggregate: its place in the aggregate (the Lambda
  // event's kinesisRecordMetadata.subsequenceNumber); nullopt for a plain record.
  std::optional<uint64_t> subsequence_number;
};

struct ProcessorInput {
  uint64_t record_id = 0;
  std::string_view data;
  RecordMetadata metadata;
};

enum class ProcessingResult { kOk, kDropped, kProcessingFailed };

struct ProcessorOutput {
  uint64_t record_id = 0;  // must match an input's record_id
  ProcessingResult result = ProcessingResult::kOk;
  std::string data;  // the new data, for kOk
};

// The Lambda role: gets one batch (one object's records) and answers per record. Records
// with no answer (Lambda.MissingRecordId), more than one (Lambda.DuplicatedRecordId),
// kProcessingFailed, or a processor that throws go to the error output as
// "processing-failed"; an answer with a record id the batch did not hold fails the whole
// batch (Lambda.MissingRecordId: the answers do not match the records). Runs on the
// thread that delivers (the delivery thread or the host's Poll call), one batch at a time.
using Processor = std::function<std::vector<ProcessorOutput>(std::span<const ProcessorInput>)>;

// Partition values for dynamic partitioning, filled by a PartitionKeyFunction.
class PartitionKeys {
 public:
  using Values = std::vector<std::pair<std::string, std::string>>;  // (name, value)

  // Sets (or replaces) the value of `name`. Values must be non-empty.
  void Set(std::string_view name, std::string_view value);
  // Keeps the strings' storage for the next record's values: a partition key function that
  // sets values of the same sizes allocates nothing in steady state.
  void Clear() { size_ = 0; }
  // In the order the names were first set.
  std::span<const std::pair<std::string, std::string>> values() const {
    return {values_.data(), size_};
  }

 private:
  Values values_;  // the first size_ are set; the rest are storage kept for reuse
  std::size_t size_ = 0;
};

// Maps a record to its partition values (the jq query / Lambda metadata of Firehose).
// Runs on the producers' threads, outside the stream's lock, so it must be thread-safe.
// Returning false (or throwing), or leaving out a key the Prefix names, sends the record to
// the error output as "partitioning-failed".
using PartitionKeyFunction =
    std::function<bool(std::string_view data, const RecordMetadata& metadata, PartitionKeys& keys)>;

struct DeliveryStreamOptions {
  // REQUIRED. 1..64 characters from [a-zA-Z0-9_.-]; appears in every object key.
  std::string delivery_stream_name;
  // Default 1. The <version> in object keys (Firehose's delivery stream version id).
  int version = 1;
  // Default DirectPut.
  std::variant<DirectPutSource, StreamSource> source;
  // REQUIRED, not owned: the destination.
  Sink* sink = nullptr;
  // Default nullptr: the error output goes to `sink`, under error_output_prefix.
  Sink* error_sink = nullptr;
  // Default "": "YYYY/MM/DD/HH/" (UTC, oldest record). docs/delivery.md, "Object keys",
  // lists the !{...} expressions.
  std::string prefix;
  // Default "": "<prefix>!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/", e.g.
  // "processing-failed/2026/01/01/00/" (the prefix is left out when it has expressions). An
  // error output prefix with expressions must contain !{firehose:error-output-type}.
  std::string error_output_prefix;
  BufferingHints buffering_hints;
  // Default uncompressed. Object keys get .gz, .zip or .snappy.
  CompressionFormat compression = CompressionFormat::kUncompressed;
  // Default 6 (zlib's default); 1..9, for GZIP and ZIP. Higher is smaller and slower.
  int compression_level = 6;
  // Default none.
  Processor processor;
  // Default 3; 0..300 (the Lambda processor's NumberOfRetries). A processor call that throws
  // is made again at once, up to this many more times; if the last one throws too, every
  // record of the batch goes to the error output as Lambda.FunctionError, with attemptsMade
  // the number of calls.
  int processor_retries = 3;
  // Default "": written as "lambdaArn" in the error output's processing-failed records (the
  // service writes its Lambda function's ARN there), left out when empty.
  std::string processor_arn;
  // Default false. True appends '\n' to every delivered record (after the processor).
  bool append_newline_delimiter = false;
  // Default none: one buffer, no dynamic partitioning. When set, the Prefix must name at
  // least one !{partitionKeyFromQuery:...} (or ...FromLambda) key.
  PartitionKeyFunction partition_key_function;
  // Default 500; 1..5000. Records that would open a partition beyond it go to the error
  // output as "partitioning-failed" (DynamicPartitioning.ActivePartitionsLimitExceeded).
  int max_active_partitions = 500;
  RetryOptions retry_options;
  // Default 512 MiB; 1 B..1 TiB. Bounds the accepted bytes not yet delivered or written to
  // the error output: past it, puts fail with ServiceUnavailableException (backpressure)
  // and count as ThrottledRecords; nothing accepted is dropped. Keep it above the size
  // hint, or buffers never reach their size and deliver on the interval only.
  int64_t max_buffered_bytes = int64_t{512} << 20;
  // Default 1 ms; 1 ms..1 h. Stream source only: how long the delivery thread waits, on
  // `clock`, after a poll of the Stream that found nothing (a poll that found records is
  // followed by another at once). With a ManualClock the thread polls only when the clock
  // moves; hosts that drive Poll() read at every Poll.
  absl::Duration source_poll_interval = absl::Milliseconds(1);
  // Default: seeded from std::random_device. Set it for reproducible object keys and
  // backoff jitter (with a ManualClock a test is then fully deterministic).
  std::optional<uint64_t> random_seed;
  // Default nullptr: SystemClock::Default(). Not owned.
  Clock* clock = nullptr;
};

// What DeliveryStream::UpdateDestination changes (Firehose's UpdateDestination); members
// left empty keep their values. Dynamic partitioning (partition_key_function) stays as it
// was created: the Prefix must keep naming partition keys exactly when it is on.
struct DestinationUpdate {
  std::optional<std::string> prefix;
  std::optional<std::string> error_output_prefix;
  std::optional<BufferingHints> buffering_hints;
  std::optional<CompressionFormat> compression;
  std::optional<Processor> processor;  // an empty Processor removes it
  std::optional<bool> append_newline_delimiter;
  std::optional<int> processor_retries;
  std::optional<std::string> processor_arn;
  Sink* sink = nullptr;  // not owned; nullptr keeps the destination (and error) sink
  // When set, the update is refused with ConcurrentModificationException unless the
  // stream's version is this one (the service's CurrentDeliveryStreamVersionId).
  std::optional<int> expected_version;
};

// Firehose's PutRecord output (riffle::PutRecordResult is the Stream's).
struct DeliveryPutRecordResult {
  uint64_t record_id = 0;  // unique in this DeliveryStream, increasing in acceptance order
  bool encrypted = false;
};

// The errorCode of a record in the error output, besides the sink status's ErrorName() for
// "delivery-failed" records (Firehose's codes).
// A record the processor answered ProcessingFailed for: the service's code and message
// ("ProcessingFailed status set for record"), as tools that replay its error output match.
inline constexpr std::string_view kLambdaProcessingFailed = "Lambda.ProcessingFailedStatus";
inline constexpr std::string_view kLambdaMissingRecordId = "Lambda.MissingRecordId";
inline constexpr std::string_view kLambdaDuplicatedRecordId = "Lambda.DuplicatedRecordId";
inline constexpr std::string_view kLambdaFunctionError = "Lambda.FunctionError";
inline constexpr std::string_view kDynamicPartitioningMetadataExtractionFailed =
    "DynamicPartitioning.MetadataExtractionFailed";
inline constexpr std::string_view kDynamicPartitioningActivePartitionsLimitExceeded =
    "DynamicPartitioning.ActivePartitionsLimitExceeded";

struct PutRecordBatchResponseEntry {
  uint64_t record_id = 0;          // set when accepted
  std::string_view error_code;     // "" when accepted; static storage
  std::string_view error_message;  // "" when accepted; static storage
};

struct PutRecordBatchResult {
  int failed_put_count = 0;
  bool encrypted = false;
  std::vector<PutRecordBatchResponseEntry> request_responses;  // one per record, in order
};

// Counters since creation (CloudWatch names in comments). After Close():
//   incoming_records == delivery_records + dropped_records + error_output_records
//                       + error_output_discarded_records.
struct DeliveryStreamMetrics {
  uint64_t incoming_records = 0;   // IncomingRecords (accepted)
  uint64_t incoming_bytes = 0;     // IncomingBytes
  uint64_t throttled_records = 0;  // ThrottledRecords (ServiceUnavailableException)
  uint64_t delivery_records = 0;   // DeliveryToSink.Records
  uint64_t delivery_bytes = 0;     // DeliveryToSink.Bytes (after processing, before
                                   // compression)
  uint64_t delivery_objects = 0;   // objects written to the sink
  uint64_t delivery_attempts = 0;  // PutObject calls to the sink
  uint64_t dropped_records = 0;    // processor answered Dropped
  uint64_t processing_failed_records = 0;
  uint64_t partitioning_failed_records = 0;
  uint64_t delivery_failed_records = 0;  // retries exhausted
  uint64_t error_output_records = 0;     // written to the error output
  uint64_t error_output_attempts = 0;
  uint64_t error_output_objects = 0;
  // The error output failed for 24 hours (what the service keeps of data it cannot deliver
  // to S3): those records were discarded.
  uint64_t error_output_discarded_records = 0;
  // Stream source: records trimmed from the Stream (retention or ring capacity) before the
  // delivery stream read them. They never reached the delivery stream and are not counted
  // in incoming_records.
  uint64_t source_records_missed = 0;  // SourceRecordsMissed
  uint64_t buffered_bytes = 0;         // accepted, not yet delivered or in the error output
  int active_partitions = 0;
  absl::Duration data_freshness;  // DataFreshness: age of the oldest undelivered record

  // DeliveryToSink.Success: successful PutObject calls / calls (1 when none).
  double DeliverySuccess() const {
    return delivery_attempts == 0 ? 1.0 : static_cast<double>(delivery_objects) / delivery_attempts;
  }
};

class DeliveryStream {
 public:
  // Validates `options` (InvalidArgumentException naming the field and its range) and
  // returns an ACTIVE stream. No thread is started.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<DeliveryStream>> Create(
      DeliveryStreamOptions options);

  // Close()s (delivers everything accepted), then stops the delivery thread if any.
  ~DeliveryStream();
  DeliveryStream(const DeliveryStream&) = delete;
  DeliveryStream& operator=(const DeliveryStream&) = delete;

  // Accepts one record. Errors: InvalidArgumentException (too large; Stream source),
  // ResourceInUseException (not ACTIVE), ServiceUnavailableException (max_buffered_bytes
  // reached: retry later; the record was not accepted).
  [[nodiscard]] absl::StatusOr<DeliveryPutRecordResult> PutRecord(std::string_view data);

  // Accepts up to 500 records / 4 MiB. Invalid requests fail as a whole (the errors of
  // PutRecord); otherwise each record is accepted or throttled on its own
  // (failed_put_count, per-record error_code ServiceUnavailableException).
  [[nodiscard]] absl::StatusOr<PutRecordBatchResult> PutRecordBatch(
      std::span<const std::string_view> records);
  // The same, reusing `out`'s storage: no allocation in steady state. `out` is overwritten.
  [[nodiscard]] absl::Status PutRecordBatch(std::span<const std::string_view> records,
                                            PutRecordBatchResult& out);

  // The host-driven step: does the delivery work that is due now on the calling thread,
  // without waiting: reads a Stream source, seals buffers whose size or interval is
  // reached, processes, compresses and writes them, retries failed objects whose backoff
  // has passed, writes the error output. Returns the objects written (0 when idle).
  size_t Poll();
  // Same as Poll(); kept for source compatibility.
  size_t Pump() { return Poll(); }

  // Seals every buffer regardless of hints and delivers it now, as Poll() does (a failed
  // object then waits for its backoff as usual). Returns the objects written.
  size_t Flush();

  // The error that kept the last step (Poll, Flush, or a round of the delivery thread) from
  // delivering: the sink's (or error sink's) status, or a compression failure. OK again
  // after a step whose writes all succeed; a step with nothing to write leaves it as it is.
  // The failed object is retried regardless (see RetryOptions).
  absl::Status last_error() const;

  // Starts the delivery thread, which polls whenever a buffer fills, an interval or backoff
  // ends (on the stream's clock) or Flush()/Close() asks, and with a Stream source also
  // every source_poll_interval. Errors: ResourceInUseException when already started,
  // stopped, or not ACTIVE.
  [[nodiscard]] absl::Status Start();

  // Stops and joins the delivery thread (after the round in progress) without delivering
  // what is buffered: the host may then Poll(), Flush() or Close(). The thread cannot be
  // started again. Idempotent; a no-op for the thread when none was started.
  void Stop();

  // Changes the destination's configuration, as Firehose's UpdateDestination: first
  // everything buffered is delivered with the configuration it was accepted under (as
  // Flush() does; an object that fails keeps its key and format for its retries), then the
  // new one applies to what is accepted next and the version (the <version> of object keys)
  // goes up by one. Errors: the options' InvalidArgumentException for a value out of range
  // or a prefix it refuses (nothing changes), ResourceInUseException when not ACTIVE,
  // ConcurrentModificationException (expected_version).
  [[nodiscard]] absl::Status UpdateDestination(const DestinationUpdate& update);
  // The version: 1 at Create unless set, one more after each UpdateDestination.
  int version() const;

  // Refuses new puts (the stream becomes DELETING) and stops reading a Stream source (what
  // it has not read stays in the Stream), then delivers everything buffered: what waits
  // for a retry is attempted again at once; a write that fails again waits for its retry
  // on the clock (with a ManualClock, advance it from another thread). Then stops the
  // delivery thread. Returns when every accepted record is delivered, dropped, in the
  // error output or discarded after 24 hours of failed error output. Idempotent; always OK.
  [[nodiscard]] absl::Status Close();

  // ACTIVE from Create, DELETING from Close (Firehose's DeliveryStreamStatus).
  DeliveryStreamStatus status() const;
  DeliveryStreamMetrics GetMetrics() const;
  const std::string& name() const;

  // Test hook: feeds one record with metadata through the internal ingestion path, as the
  // Stream source does, bypassing the source-type check. Not for production use.
  [[nodiscard]] absl::Status TEST_Ingest(std::string_view data, const RecordMetadata& metadata);

 private:
  struct Impl;  // src/delivery/delivery_stream_impl.h
  explicit DeliveryStream(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace riffle

#endif  // RIFFLE_DELIVERY_STREAM_H_
