// The buckets of an account (src/account/s3_*.cc). A BucketStore is one bucket: its index
// of objects (key -> size, ETag, LastModified; the bytes too for a bucket in memory), and
// for a directory bucket the FileSink that writes each object atomically. It is also the
// Sink a delivery stream of the account writes to, so that the account's fault plan sees
// every write as a PutObject on the bucket.
//
// Thread safety: a BucketStore guards itself; the registry guards its map.
#ifndef RIFFLE_ACCOUNT_S3_INTERNAL_H_
#define RIFFLE_ACCOUNT_S3_INTERNAL_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "account/account_core.h"
#include "riffle/s3.h"
#include "riffle/sink.h"

namespace riffle::detail {

// "\"<hex MD5>\"" of `data`: S3's ETag of a single-part object.
std::string ETagOf(std::string_view data);

// NoSuchBucket "The specified bucket does not exist" naming the bucket.
absl::Status NoSuchBucketError(std::string_view bucket);
// The fault plan for an S3 call; an injected error names its bucket and key (payloads
// kErrorFieldPayloadPrefix + BucketName / Key) as S3's own errors do.
absl::Status InjectS3(AccountCore& core, std::string_view operation, std::string_view bucket,
                      std::string_view arn, std::string_view key);

class BucketStore final : public Sink {
 public:
  struct Meta {
    int64_t size = 0;
    std::string etag;
    int64_t last_modified_ms = 0;
    std::string data;  // memory buckets only
  };

  // Opens (creates) `directory` when it is not empty and indexes the files already there.
  static absl::StatusOr<std::shared_ptr<BucketStore>> Create(AccountCore& core,
                                                             std::string_view name,
                                                             std::string_view directory);

  // The Sink: the fault plan ("PutObject" on this bucket, the key as the shard), then the
  // write. What a delivery stream and S3::PutObject call.
  absl::Status PutObject(std::string_view key, std::string_view data) override;
  // S3's key length; a directory bucket's rule for keys it can hold as files.
  absl::Status CheckKey(std::string_view key) const override;
  // A directory bucket: InvalidArgument when `key` needs a directory where an object is a
  // file, or names the directory of other objects.
  absl::Status CheckFileLayout(std::string_view key) const;

  // Copies of the index entries with keys > `after` (or >= `after` when inclusive), in key
  // order, that start with `prefix`, at most `limit` of them; data left out.
  std::vector<std::pair<std::string, Meta>> Scan(std::string_view prefix, std::string_view after,
                                                 bool skip_after_prefix, std::size_t limit) const;
  std::optional<Meta> Head(std::string_view key) const;
  // The bytes (NoSuchKey when the key is missing, or its file is gone).
  absl::StatusOr<std::string> Read(std::string_view key, Meta* meta) const;
  void Delete(std::string_view key);

  const std::string& name() const { return name_; }
  const std::string& arn() const { return arn_; }
  int64_t created_ms() const { return created_ms_; }
  bool in_memory() const { return files_ == nullptr; }

 private:
  BucketStore(AccountCore& core, std::string_view name, std::unique_ptr<FileSink> files,
              int64_t created_ms);
  std::string PathOf(std::string_view key) const;
  // Removes empty directories standing where `key`'s file goes. REQUIRES files_mu_.
  void RemoveEmptyDirectoriesAt(std::string_view key) const;
  // Removes the directories above `key`'s file that are empty. REQUIRES files_mu_.
  void RemoveEmptyParents(std::string_view key) const;
  // An object's size, ETag and time, without its body.
  static Meta MetadataOf(const Meta& m);

  AccountCore& core_;
  const std::string name_;
  const std::string arn_;
  const std::unique_ptr<FileSink> files_;  // nullptr: in memory
  const int64_t created_ms_;
  // Directory buckets: held across a put's file write and index update, a read's index
  // lookup and file read, and a delete, so that a body and its ETag always belong to the
  // same write. Taken before mu_.
  mutable std::mutex files_mu_;
  mutable std::mutex mu_;
  std::map<std::string, Meta, std::less<>> objects_;  // byte order: UTF-8 binary order
};

class BucketRegistry {
 public:
  std::mutex mu;
  std::map<std::string, std::shared_ptr<BucketStore>, std::less<>> buckets;  // guarded by mu
};

}  // namespace riffle::detail

#endif  // RIFFLE_ACCOUNT_S3_INTERNAL_H_
