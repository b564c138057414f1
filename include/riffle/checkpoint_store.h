// Where a Consumer records how far each shard was processed.
//
// A checkpoint is a string: a record's sequence number (processing resumes after it),
// "<sequence number>:<sub-sequence number>" for a user record inside an aggregate (a KPL
// aggregate read with de-aggregation, riffle/kpl.h: processing resumes after that user
// record), or kShardEndCheckpoint once a closed shard was processed to its end (its
// children may start). A new application starting at LATEST or AT_TIMESTAMP writes
// kLatestCheckpoint or kAtTimestampCheckpoint for the shards it starts from, as the KCL's
// new leases hold that position until a record is checkpointed. kTrimHorizonCheckpoint is
// a position too: a store that holds "nothing processed" apart from "never checkpointed"
// (OffsetCheckpointStore, for offset 0 committed by Kafka's tools) returns it, and the shard
// is processed from its oldest record. Keys are (application name, shard id).
//
// Thread safety: implementations must allow calls from any thread; both stores here do.
#ifndef RIFFLE_CHECKPOINT_STORE_H_
#define RIFFLE_CHECKPOINT_STORE_H_

#include <charconv>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace riffle {

inline constexpr std::string_view kShardEndCheckpoint = "SHARD_END";
inline constexpr std::string_view kLatestCheckpoint = "LATEST";
inline constexpr std::string_view kAtTimestampCheckpoint = "AT_TIMESTAMP";
inline constexpr std::string_view kTrimHorizonCheckpoint = "TRIM_HORIZON";

// The checkpoint of a user record inside an aggregate: "<sequence number>:<sub-sequence>".
inline std::string SubRecordCheckpoint(std::string_view sequence_number,
                                       uint64_t sub_sequence_number) {
  std::string out(sequence_number);
  out += ':';
  out += std::to_string(sub_sequence_number);
  return out;
}

// The two parts of a SubRecordCheckpoint; nullopt for any other string (the sequence
// number part is not checked).
inline std::optional<std::pair<std::string_view, uint64_t>> SplitSubRecordCheckpoint(
    std::string_view checkpoint) {
  const std::size_t colon = checkpoint.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == checkpoint.size()) {
    return std::nullopt;
  }
  uint64_t sub = 0;
  const char* end = checkpoint.data() + checkpoint.size();
  const auto [ptr, ec] = std::from_chars(checkpoint.data() + colon + 1, end, sub);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return std::pair(checkpoint.substr(0, colon), sub);
}

class CheckpointStore {
 public:
  virtual ~CheckpointStore() = default;
  // nullopt: the shard was never checkpointed by this application.
  [[nodiscard]] virtual absl::StatusOr<std::optional<std::string>> GetCheckpoint(
      std::string_view application, std::string_view shard_id) = 0;
  // Durable when it returns OK (as durable as the store is).
  [[nodiscard]] virtual absl::Status PutCheckpoint(std::string_view application,
                                                   std::string_view shard_id,
                                                   std::string_view checkpoint) = 0;
  // Forgets the shard's checkpoint (OK when there was none). A Consumer deletes the entry
  // of a parent that aged out of the stream once its children have theirs, as the KCL
  // deletes a finished parent's lease. Default: Unimplemented (the entries stay).
  [[nodiscard]] virtual absl::Status DeleteCheckpoint(std::string_view application,
                                                      std::string_view shard_id) {
    (void)application;
    (void)shard_id;
    return absl::UnimplementedError("DeleteCheckpoint is not supported by this store.");
  }
};

// Checkpoints in memory: they live as long as the object.
class InMemoryCheckpointStore final : public CheckpointStore {
 public:
  absl::StatusOr<std::optional<std::string>> GetCheckpoint(std::string_view application,
                                                           std::string_view shard_id) override;
  absl::Status PutCheckpoint(std::string_view application, std::string_view shard_id,
                             std::string_view checkpoint) override;
  absl::Status DeleteCheckpoint(std::string_view application, std::string_view shard_id) override;

 private:
  std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::string, std::less<>> checkpoints_;
};

// Checkpoints in files that survive a process restart: one file per application,
// `<directory>/<application>.checkpoints`, one "shard checkpoint" line per shard. A put
// writes the whole file to `<application>.checkpoints.tmp` in the same directory, fsyncs
// it, renames it over the old one and fsyncs the directory: a crash leaves the old file or
// the new one, never a half-written one. Application names are 1..128 characters of
// [a-zA-Z0-9_.-] (InvalidArgumentException otherwise). Several stores on one directory,
// in one process or several, may write the same application: a put holds an flock(2) on
// `<application>.checkpoints.lock` and applies itself to the file as it is then (reads
// are served from what the store last read or wrote).
// Errors: InternalFailure naming the operation, the path and errno's text when the file
// system refuses (the checkpoint is not known to be stored; the store reads the file again
// at the next call). A file that exists but cannot be read is such an error too, never
// taken for an empty one.
//
// Reading is lenient, so that one damaged line never stops the store (the file is only
// ever replaced whole, so damage comes from elsewhere: a partial copy, an edit, a disk):
//  - blank lines are skipped, and "\r\n" line ends are read as "\n";
//  - a line that is not "<shard> <checkpoint>" (one space between two parts of 1 to 256
//    characters without spaces) is ignored, and dropped from the file at the next put;
//  - the last line, when the file does not end with a newline (the store ends every line
//    with one), may have been cut short: GetCheckpoint for its shard fails with
//    InvalidCheckpointException (code kDataLoss) instead of returning a checkpoint that
//    could be truncated, until a PutCheckpoint for that shard replaces it. Puts for other
//    shards keep that line as it is. Every other shard reads and writes as usual.
class FileCheckpointStore final : public CheckpointStore {
 public:
  // REQUIRES: `directory` exists and is writable.
  explicit FileCheckpointStore(std::string directory);

  [[nodiscard]] absl::StatusOr<std::optional<std::string>> GetCheckpoint(
      std::string_view application, std::string_view shard_id) override;
  [[nodiscard]] absl::Status PutCheckpoint(std::string_view application, std::string_view shard_id,
                                           std::string_view checkpoint) override;
  [[nodiscard]] absl::Status DeleteCheckpoint(std::string_view application,
                                              std::string_view shard_id) override;

  std::string PathFor(std::string_view application) const;

 private:
  // Puts `checkpoint`, or deletes the entry when it is nullopt, and writes the file.
  absl::Status Update(std::string_view application, std::string_view shard_id,
                      std::optional<std::string_view> checkpoint);
  struct Table {
    std::map<std::string, std::string, std::less<>> checkpoints;
    // The unterminated last line, kept apart (and written back unterminated) because its
    // checkpoint may be cut short.
    std::optional<std::pair<std::string, std::string>> unterminated;
  };
  static Table ParseTable(std::string_view text);
  absl::StatusOr<Table*> Load(std::string_view application);  // under mu_

  const std::string directory_;
  std::mutex mu_;
  std::map<std::string, Table, std::less<>> tables_;  // cache of what is on disk
};

}  // namespace riffle

#endif  // RIFFLE_CHECKPOINT_STORE_H_
