// Helpers shared by the fuzz targets: a failing check that libFuzzer reports as a crash,
// the set of error names riffle produces, and a small live stream to read from.
#ifndef RIFFLE_FUZZ_FUZZ_SUPPORT_H_
#define RIFFLE_FUZZ_FUZZ_SUPPORT_H_

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fmt/format.h"
#include "riffle/status.h"
#include "riffle/stream.h"

namespace riffle_fuzz {

[[noreturn]] inline void Fail(const char* file, int line, const char* condition,
                              const std::string& detail) {
  std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", file, line, condition, detail.c_str());
  std::abort();  // libFuzzer saves the input as a crash
}

// FUZZ_CHECK(cond, detail): a property the input broke. `detail` is evaluated on failure only.
#define FUZZ_CHECK(cond, detail)                                           \
  do {                                                                     \
    if (!(cond)) ::riffle_fuzz::Fail(__FILE__, __LINE__, #cond, (detail)); \
  } while (0)

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// The fields of `text` between separators (an empty text is one empty field).
inline std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> fields;
  size_t at = 0;
  for (;;) {
    const size_t end = text.find(separator, at);
    fields.push_back(text.substr(at, end == std::string_view::npos ? text.size() - at : end - at));
    if (end == std::string_view::npos) return fields;
    at = end + 1;
  }
}

// Printable for a failure message: non-printable bytes escaped, cut at 200 bytes.
inline std::string Printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 200; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  if (s.size() > 200) out += fmt::format("... ({} bytes)", s.size());
  return out;
}

// Every error name riffle produces (status.h); a status carrying another is a defect.
inline constexpr std::string_view kRiffleErrorNames[] = {
    riffle::kInvalidArgumentException,
    riffle::kResourceNotFoundException,
    riffle::kResourceInUseException,
    riffle::kLimitExceededException,
    riffle::kExpiredIteratorException,
    riffle::kProvisionedThroughputExceededException,
    riffle::kInternalFailure,
    riffle::kValidationException,
    riffle::kExpiredNextTokenException,
    riffle::kAccessDeniedException,
    riffle::kKMSThrottlingException,
    riffle::kKMSDisabledException,
    riffle::kKMSInvalidStateException,
    riffle::kKMSAccessDeniedException,
    riffle::kKMSNotFoundException,
    riffle::kKMSOptInRequired,
    riffle::kServiceUnavailable,
    riffle::kThrottlingException,
    riffle::kServiceUnavailableException,
    riffle::kConcurrentModificationException,
    riffle::kNoSuchBucket,
    riffle::kNoSuchKey,
    riffle::kBucketAlreadyOwnedByYou,
    riffle::kInvalidBucketName,
    riffle::kBucketNotEmpty,
    riffle::kKeyTooLongError,
    riffle::kS3InvalidArgument,
    riffle::kInternalError,
    riffle::kSlowDown,
    riffle::kShutdownException,
    riffle::kInvalidCheckpointException,
    riffle::kInvalidParameterValue,
    riffle::kMissingParameter,
    riffle::kInvalidAttributeValue,
    riffle::kReceiptHandleIsInvalid,
    riffle::kMessageNotInflight,
    riffle::kInvalidMessageContents,
    riffle::kTooManyEntriesInBatchRequest,
    riffle::kBatchEntryIdsNotDistinct,
    riffle::kEmptyBatchRequest,
    riffle::kInvalidBatchEntryId,
    riffle::kBatchRequestTooLong,
    riffle::kQueueDoesNotExist,
    riffle::kQueueDeletedRecently,
    riffle::kQueueNameExists,
    riffle::kPurgeQueueInProgress,
    riffle::kInvalidAttributeName,
    riffle::kUnsupportedOperation,
    riffle::kFileSinkIOError};

inline bool IsRiffleErrorName(std::string_view name) {
  for (std::string_view n : kRiffleErrorNames) {
    if (n == name) return true;
  }
  return false;
}

inline std::string Describe(const absl::Status& s) {
  return fmt::format("{}: {}", riffle::ErrorName(s), riffle::ErrorMessage(s));
}

// A new directory for a target's files, removed at exit: in /dev/shm when there is one
// (FileCheckpointStore fsyncs every put, which on a disk would make each run slow), else
// in /tmp.
inline std::vector<std::filesystem::path>& ScratchDirectories() {
  static auto* dirs = new std::vector<std::filesystem::path>;
  return *dirs;
}
inline std::filesystem::path MakeScratchDirectory(std::string_view name) {
  static const bool cleanup = [] {
    std::atexit([] {
      std::error_code ec;
      for (const auto& p : ScratchDirectories()) std::filesystem::remove_all(p, ec);
    });
    return true;
  }();
  (void)cleanup;
  const char* base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  std::string pattern = fmt::format("{}/riffle-fuzz-{}-XXXXXX", base, name);
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  ScratchDirectories().push_back(pattern);
  return pattern;
}

// A stream in a fixed state for the read-side targets, built once per process on a
// ManualClock that never moves (so no iterator expires). Two shards of 4 KiB rings
// (segments of 1 KiB); shard 0 is then split, so the stream holds a closed parent whose
// ring wrapped (trimmed records below its horizon), two children with a few records each,
// and an open shard that wrapped. Every record put is remembered by its sequence number.
// Positions and indexes are deterministic (seed corpora name real records); the stream tag
// and the secret are not, so inputs carry the tag as zeros and the targets put it in.
struct PutRecord {
  std::string shard_id;
  std::string key;
  std::string data;
  riffle::SequenceNumber number;
};

class LiveStream {
 public:
  static LiveStream& Get() {
    static LiveStream* live = new LiveStream();  // never destroyed: targets run until exit
    return *live;
  }

  riffle::Stream& stream() { return *stream_; }
  uint64_t tag() const { return stream_->stream_tag(); }
  const std::vector<PutRecord>& records() const { return records_; }
  const std::vector<std::string>& shard_ids() const { return shard_ids_; }
  // The record put under this sequence number, or nullptr.
  const PutRecord* Find(const riffle::SequenceNumber& n) const {
    auto it = by_number_.find(n.ToString());
    return it == by_number_.end() ? nullptr : &records_[it->second];
  }

 private:
  LiveStream() {
    riffle::StreamOptions o;
    o.stream_name = "fuzzed";
    o.shard_count = 2;
    o.ring_capacity_bytes = 4096;
    o.max_record_size_bytes = 200;
    o.clock = &clock_;
    o.routing = riffle::RoutingMode::kMd5;
    stream_ = std::move(riffle::Stream::Create(o)).value();
    // Lapped rings: 120 records of 40-170 bytes per shard pass 4 KiB several times.
    for (int i = 0; i < 240; ++i) Put(fmt::format("key-{}", i % 13), i);
    (void)stream_->SplitShard("shardId-000000000000",
                              riffle::FormatHashKey(riffle::kMaxHashKey / 4));
    for (int i = 240; i < 260; ++i) Put(fmt::format("key-{}", i % 13), i);
    const std::vector<riffle::Shard> shards = stream_->ListShards().value();
    for (const riffle::Shard& s : shards) shard_ids_.push_back(s.shard_id);
  }

  void Put(const std::string& key, int i) {
    // Data that imitates frame headers (lengths, flags) at aligned offsets, so that a
    // forged position inside a record finds something header-like.
    std::string data = fmt::format("record {} ", i);
    for (int k = 0; k < (i * 7) % 17; ++k) {
      const uint64_t word = (uint64_t{48} + 16 * static_cast<uint64_t>(k % 4)) |
                            (uint64_t{1} << 32) | (static_cast<uint64_t>(i % 2) << 48);
      data.append(reinterpret_cast<const char*>(&word), sizeof word);
    }
    auto r = stream_->PutRecord(key, data);
    if (!r.ok()) std::abort();
    by_number_[r->sequence_number.ToString()] = records_.size();
    records_.push_back({std::string(r->shard_id), key, data, r->sequence_number});
  }

  riffle::ManualClock clock_;
  std::unique_ptr<riffle::Stream> stream_;
  std::vector<PutRecord> records_;
  std::map<std::string, size_t> by_number_;
  std::vector<std::string> shard_ids_;
};

// Checks every record of a successful read against what was put (same number, key and
// data), and that record indexes increase within the read.
inline void CheckRecordsWerePut(const LiveStream& live, const riffle::GetRecordsResult& out,
                                std::string_view context) {
  uint64_t previous = 0;
  bool first = true;
  for (const riffle::Record& r : out.records) {
    const PutRecord* put = live.Find(r.sequence_number);
    FUZZ_CHECK(put != nullptr, fmt::format("{}: GetRecords returned record {} that was never put",
                                           context, r.sequence_number.ToString()));
    FUZZ_CHECK(put->key == r.partition_key && put->data == r.data,
               fmt::format("{}: record {} differs from what was put", context,
                           r.sequence_number.ToString()));
    FUZZ_CHECK(first || r.sequence_number.record_index > previous,
               fmt::format("{}: record indexes do not increase", context));
    previous = r.sequence_number.record_index;
    first = false;
  }
}

}  // namespace riffle_fuzz

#endif  // RIFFLE_FUZZ_FUZZ_SUPPORT_H_
