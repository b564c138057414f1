// Sinks: where a DeliveryStream writes its objects (the S3 bucket / HTTP endpoint role).
//
// A Sink stores whole objects under string keys ("2026/01/01/00/orders-1-...gz"). riffle
// ships three: FileSink (a directory standing for a bucket), MemorySink (a map, for tests)
// and CallbackSink (a function, for quick adapters and fault injection). Implement Sink to
// send objects to your own S3 or HTTP client.
//
// Contract for implementers:
//  - PutObject either stores the complete object and returns OK, or returns an error; a
//    failed call is retried later with the same key and the same bytes, so a PutObject
//    that overwrites is idempotent and delivery is at-least-once.
//  - The status's AWS-style name (riffle::ErrorName) and message go to the error output
//    when retries are exhausted, so make them informative.
//  - A DeliveryStream calls its sinks from one thread at a time (its delivery thread or
//    the host calling Pump/Flush/Close), never while holding a lock producers take. A sink
//    shared by several DeliveryStreams must be thread-safe; the ones below are.
//  - PutObject must not throw (an escaping exception is caught and counted as a failure)
//    and must not call back into the DeliveryStream that feeds it.
#ifndef RIFFLE_SINK_H_
#define RIFFLE_SINK_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "riffle/status.h"

namespace riffle {

class Sink {
 public:
  virtual ~Sink() = default;

  // Stores `data` under `key`, replacing any object with the same key.
  [[nodiscard]] virtual absl::Status PutObject(std::string_view key, std::string_view data) = 0;
  // InvalidArgumentException when no PutObject can ever store an object under `key` (the
  // sink's own rule for keys, whatever it holds). A DeliveryStream checks keys made from its
  // prefixes with it when it is created or updated. Default: every key is fine.
  [[nodiscard]] virtual absl::Status CheckKey(std::string_view key) const {
    (void)key;
    return absl::OkStatus();
  }
};

// A directory standing for a bucket: key "a/b/c.gz" becomes file <directory>/a/b/c.gz.
// Objects are written to <directory>/.riffle-tmp/ and renamed into place, so a reader
// listing the key tree never sees half an object. Thread-safe.
//
// Temporaries left by a crash are removed by the next Create on the directory. Each
// FileSink names its temporaries "<owner>-<n>" ("<owner>" is "<pid>-<random>") and holds an
// exclusive flock(2) on ".riffle-tmp/<owner>.lock" for its lifetime; the kernel releases
// the lock when the process dies, however it dies. Create deletes the temporaries and lock
// file of every owner whose lock it can take, and never touches finished objects, a live
// FileSink's temporaries (in any process sharing the directory: containers, or NFS hosts
// with working locks) or files it does not recognise. Creates take turns on
// ".riffle-tmp/cleanup.lock", so none judges an owner between its lock file's creation and
// its flock. On a file system without locks (ENOLCK) nothing is removed.
//
// Errors: InvalidArgumentException for a key that would escape the directory (absolute,
// "." or ".." segments, NUL bytes, or under .riffle-tmp); kFileSinkIOError (canonical code
// kUnavailable, retried by the DeliveryStream) when the file system refuses, with the
// operation, the path and errno's text.
class FileSink final : public Sink {
 public:
  struct Options {
    std::string directory;  // REQUIRED. Created (with parents) if missing.
    // Default false. True fsyncs each object and its directory before PutObject returns:
    // the object survives a power loss, at the cost of disk flushes per object: the file, and
    // each directory from the key's own up to the sink's.
    bool fsync = false;
  };

  // Creates the directory and its temporary area, removes abandoned temporaries and takes
  // this sink's owner lock. Errors: InvalidArgumentException (empty directory),
  // kFileSinkIOError (the directory cannot be created or the lock taken).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<FileSink>> Create(Options options);
  ~FileSink() override;  // removes the owner lock file

  [[nodiscard]] absl::Status PutObject(std::string_view key, std::string_view data) override;
  [[nodiscard]] absl::Status CheckKey(std::string_view key) const override;

  const std::string& directory() const { return options_.directory; }

 private:
  FileSink(Options options, std::string owner, int owner_fd);

  const Options options_;
  const std::string owner_;  // "<pid>-<random>": names this sink's temporaries
  const int owner_fd_;       // holds the flock on <owner>.lock; -1 without lock support
  std::atomic<uint64_t> next_temp_id_{0};
};

// Keeps objects in memory, keyed and sorted by key. Thread-safe.
class MemorySink final : public Sink {
 public:
  [[nodiscard]] absl::Status PutObject(std::string_view key, std::string_view data) override;

  // Snapshots (copies) taken under the sink's lock.
  std::map<std::string, std::string> Objects() const;
  std::vector<std::string> Keys() const;
  std::optional<std::string> Get(std::string_view key) const;
  size_t size() const;
  // Successful PutObject calls, overwrites included.
  uint64_t put_count() const;
  void Clear();

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string, std::less<>> objects_;
  uint64_t put_count_ = 0;
};

// Forwards every PutObject to a function. Thread safety is the function's.
class CallbackSink final : public Sink {
 public:
  using Callback = std::function<absl::Status(std::string_view key, std::string_view data)>;

  // REQUIRES: `callback` is non-empty.
  explicit CallbackSink(Callback callback) : callback_(std::move(callback)) {}

  [[nodiscard]] absl::Status PutObject(std::string_view key, std::string_view data) override {
    return callback_(key, data);
  }

 private:
  Callback callback_;
};

}  // namespace riffle

#endif  // RIFFLE_SINK_H_
