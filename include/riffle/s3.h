// riffle::S3: the buckets of an Account (account.h), with the few S3 calls a test needs to
// read back what a Firehose delivery stream wrote: CreateBucket, ListBuckets, PutObject,
// ListObjectsV2, GetObject, HeadObject and DeleteObject. A bucket keeps its objects in
// memory or in a directory (FileSink's layout: key "a/b/c.gz" is file <directory>/a/b/c.gz),
// and a delivery stream of the account writes into it through the same PutObject.
//
//   riffle::S3& s3 = account->s3();
//   (void)s3.CreateBucket({.bucket = "deliveries"});                 // in memory
//   (void)s3.CreateBucket({.bucket = "archive", .directory = "/tmp/archive"});
//   auto page = s3.ListObjectsV2({.bucket = "deliveries", .prefix = "2026/"});
//   for (const riffle::S3Object& o : page->contents) {
//     auto object = s3.GetObject({.bucket = "deliveries", .key = o.key});  // object->body
//   }
//
// Errors carry S3's names (status.h): NoSuchBucket, NoSuchKey, BucketAlreadyOwnedByYou,
// InvalidBucketName, InvalidArgument; and whatever the account's FaultPlan injects. Every
// call consults the plan under its S3 operation name with the bucket as the resource:
// FaultRule::FailNext("PutObject", 3, riffle::kInternalError).OnResource("deliveries")
// makes the bucket fail the next three writes (a delivery stream retries them, then writes
// its error output), and .OnShard(key) narrows a rule to one key.
//
// Thread safety: every method may be called from any thread.
#ifndef RIFFLE_S3_H_
#define RIFFLE_S3_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace riffle {

namespace detail {
struct AccountCore;
class BucketStore;
class BucketRegistry;
}  // namespace detail

// Keys listed by ListObjectsV2 at most (and MaxKeys' default).
inline constexpr int kMaxListObjectsKeys = 1000;
// A key is 1..1,024 bytes.
inline constexpr std::size_t kMaxObjectKeyBytes = 1024;

struct CreateBucketInput {
  // 3..63 characters of [a-z0-9.-], starting and ending with a letter or digit, no "..",
  // not an IP address, not starting with "xn--", "sthree-" or "amzn-s3-demo-", not ending
  // with "-s3alias", "--ol-s3", ".mrap", "--x-s3" or "--table-s3".
  std::string_view bucket;
  // riffle: where the objects live. Empty (the default): in memory. Otherwise a directory,
  // created if missing, that holds each object as a file (FileSink's layout, written
  // atomically); the files already there become the bucket's objects.
  std::string_view directory;
};

struct CreateBucketOutput {
  std::string location;  // "/<bucket>"
};

struct Bucket {
  std::string name;
  absl::Time creation_date;
};

struct ListBucketsOutput {
  std::vector<Bucket> buckets;  // by name
};

struct PutObjectInput {
  std::string_view bucket;
  std::string_view key;  // 1..1,024 bytes
  std::string_view body;
};

struct PutObjectOutput {
  std::string etag;  // "\"<hex MD5 of the body>\""
};

struct ListObjectsV2Input {
  std::string_view bucket;
  std::string_view prefix;              // only keys that start with it
  std::string_view delimiter;           // keys with it after the prefix roll up into CommonPrefixes
  std::optional<int> max_keys;          // default 1,000; at most 1,000 are returned; >= 0
  std::string_view continuation_token;  // a NextContinuationToken of this bucket
  std::string_view start_after;         // keys after it (ignored with a token)
};

struct S3Object {
  std::string key;
  absl::Time last_modified;
  std::string etag;  // quoted hex MD5 of the content (objects are single-part)
  int64_t size = 0;
  std::string storage_class = "STANDARD";
};

struct CommonPrefix {
  std::string prefix;
};

struct ListObjectsV2Output {
  std::string name;  // the bucket
  std::string prefix;
  std::string delimiter;
  int max_keys = kMaxListObjectsKeys;
  int key_count = 0;  // contents + common prefixes returned
  bool is_truncated = false;
  std::vector<S3Object> contents;             // keys in UTF-8 binary order
  std::vector<CommonPrefix> common_prefixes;  // in the same order
  std::string continuation_token;             // as given
  std::string next_continuation_token;        // set when is_truncated
  std::string start_after;                    // as given
};

struct GetObjectInput {
  std::string_view bucket;
  std::string_view key;
};

struct GetObjectOutput {
  std::string body;
  int64_t content_length = 0;
  std::string etag;
  absl::Time last_modified;
};

struct HeadObjectInput {
  std::string_view bucket;
  std::string_view key;
};

struct HeadObjectOutput {
  int64_t content_length = 0;
  std::string etag;
  absl::Time last_modified;
};

struct DeleteObjectInput {
  std::string_view bucket;
  std::string_view key;
};

class S3 {
 public:
  // Internal: use Account::s3().
  explicit S3(detail::AccountCore& core);
  ~S3();
  S3(const S3&) = delete;
  S3& operator=(const S3&) = delete;

  // BucketAlreadyOwnedByYou for a name the account has; InvalidBucketName; InvalidArgument
  // for a directory that cannot be created or read.
  [[nodiscard]] absl::StatusOr<CreateBucketOutput> CreateBucket(const CreateBucketInput& input);
  [[nodiscard]] absl::StatusOr<ListBucketsOutput> ListBuckets();

  // Stores `body` under `key`, replacing what was there. NoSuchBucket; InvalidArgument for a
  // key outside 1..1,024 bytes, or one a directory bucket cannot hold as a file (".." or
  // "." segments, a leading '/', NUL bytes, under ".riffle-tmp/"; "a/b" beside an object
  // "a", or "a" beside "a/b": S3 holds both, a directory cannot).
  [[nodiscard]] absl::StatusOr<PutObjectOutput> PutObject(const PutObjectInput& input);
  // NoSuchBucket; InvalidArgument for MaxKeys below 0 or a token this bucket did not issue.
  [[nodiscard]] absl::StatusOr<ListObjectsV2Output> ListObjectsV2(const ListObjectsV2Input& input);
  // NoSuchBucket, NoSuchKey.
  [[nodiscard]] absl::StatusOr<GetObjectOutput> GetObject(const GetObjectInput& input);
  // NoSuchBucket, NoSuchKey (over HTTP the service answers a bare 404).
  [[nodiscard]] absl::StatusOr<HeadObjectOutput> HeadObject(const HeadObjectInput& input);
  // Removes the object; a missing key is not an error (as on the service). NoSuchBucket.
  [[nodiscard]] absl::Status DeleteObject(const DeleteObjectInput& input);

  // riffle: arn:aws:s3:::<bucket> (the aws partition).
  static std::string BucketArn(std::string_view bucket);
  // The bucket's ARN in the account's partition (arn:aws-cn:s3:::<bucket> in cn-north-1).
  std::string ArnOf(std::string_view bucket) const;

  // Internal: the bucket a delivery stream writes to (nullptr when there is none).
  std::shared_ptr<detail::BucketStore> FindBucket(std::string_view name) const;

 private:
  detail::AccountCore& core_;
  std::unique_ptr<detail::BucketRegistry> registry_;
};

}  // namespace riffle

#endif  // RIFFLE_S3_H_
