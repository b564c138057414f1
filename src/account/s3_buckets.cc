// The account's buckets: BucketStore (index, memory or directory) and the S3 calls.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <vector>

#include "account/s3_internal.h"
#include "common/names.h"
#include "fmt/format.h"
#include "riffle/hash_key.h"
#include "riffle/s3.h"
#include "riffle/status.h"

namespace riffle {
namespace detail {

std::string ETagOf(std::string_view data) {
  const HashKey h = Md5HashKey(data);  // the digest read big-endian: its hex is the digest's
  return fmt::format("\"{:016x}{:016x}\"", absl::Uint128High64(h), absl::Uint128Low64(h));
}

namespace {

// The service's error: its code, its fixed message, and the field it names beside them.
absl::Status S3Error(absl::StatusCode code, std::string_view name, std::string_view message,
                     std::string_view field, std::string_view value) {
  absl::Status s = MakeError(code, name, message);
  s.SetPayload(fmt::format("{}{}", kErrorFieldPayloadPrefix, field),
               absl::Cord(absl::string_view(value.data(), value.size())));
  return s;
}

}  // namespace

absl::Status InjectS3(AccountCore& core, std::string_view operation, std::string_view bucket,
                      std::string_view arn, std::string_view key) {
  absl::Status s = core.Inject(operation, bucket, arn, key);
  if (s.ok()) return s;
  // As S3's errors do, the injected one names its bucket and key.
  if (!bucket.empty()) {
    s.SetPayload(fmt::format("{}BucketName", kErrorFieldPayloadPrefix),
                 absl::Cord(absl::string_view(bucket.data(), bucket.size())));
  }
  if (!key.empty()) {
    s.SetPayload(fmt::format("{}Key", kErrorFieldPayloadPrefix),
                 absl::Cord(absl::string_view(key.data(), key.size())));
  }
  return s;
}

absl::Status NoSuchBucketError(std::string_view bucket) {
  return S3Error(absl::StatusCode::kNotFound, kNoSuchBucket, "The specified bucket does not exist",
                 "BucketName", bucket);
}

namespace {

// S3 keeps LastModified and CreationDate to the second.
int64_t WholeSecondMillis(int64_t ms) { return (ms >= 0 ? ms / 1000 : (ms - 999) / 1000) * 1000; }

absl::Status NoSuchKeyError(std::string_view key) {
  return S3Error(absl::StatusCode::kNotFound, kNoSuchKey, "The specified key does not exist.",
                 "Key", key);
}

absl::Status S3InvalidArgument(std::string_view message) {
  return MakeError(absl::StatusCode::kInvalidArgument, kS3InvalidArgument, message);
}

// The longest name of one directory entry on Linux's file systems (NAME_MAX).
constexpr std::size_t kMaxFileNameBytes = 255;

// A key a directory can hold as a file under it (FileSink's rule, checked before the fault
// plan so that a refused key never counts as a write).
bool FileKeyOk(std::string_view key) {
  if (key.empty() || key.front() == '/' || key.find('\0') != std::string_view::npos) return false;
  std::size_t start = 0;
  while (start <= key.size()) {
    std::size_t slash = key.find('/', start);
    if (slash == std::string_view::npos) slash = key.size();
    const std::string_view seg = key.substr(start, slash - start);
    if (seg == "." || seg == ".." || (start == 0 && seg == ".riffle-tmp")) return false;
    if (seg.size() > kMaxFileNameBytes) return false;      // S3 has no such limit; a directory has
    if (seg.empty() && slash != key.size()) return false;  // "a//b" names no file
    start = slash + 1;
  }
  return key.back() != '/';
}

}  // namespace

BucketStore::BucketStore(AccountCore& core, std::string_view name, std::unique_ptr<FileSink> files,
                         int64_t created_ms)
    : core_(core),
      name_(name),
      arn_(fmt::format("arn:{}:s3:::{}", ArnPartition(core.region()), name)),
      files_(std::move(files)),
      created_ms_(created_ms) {}

absl::StatusOr<std::shared_ptr<BucketStore>> BucketStore::Create(AccountCore& core,
                                                                 std::string_view name,
                                                                 std::string_view directory) {
  std::unique_ptr<FileSink> files;
  if (!directory.empty()) {
    auto sink = FileSink::Create({.directory = std::string(directory)});
    if (!sink.ok()) {
      return S3InvalidArgument(fmt::format("The directory of bucket {} cannot be used: {}", name,
                                           ErrorMessage(sink.status())));
    }
    files = *std::move(sink);
  }
  std::shared_ptr<BucketStore> b(
      new BucketStore(core, name, std::move(files), WholeSecondMillis(core.clock.NowMillis())));
  if (b->files_ == nullptr) return b;
  // The files already there are objects (not the temporaries of a FileSink).
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path root(b->files_->directory());
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    const fs::path rel = it->path().lexically_relative(root);
    std::error_code entry_ec;
    if (rel.begin() != rel.end() && *rel.begin() == ".riffle-tmp") {
      if (it->is_directory(entry_ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(entry_ec)) continue;
    std::ifstream f(it->path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const std::string key = rel.generic_string();
    if (key.size() > kMaxObjectKeyBytes) continue;
    const auto mtime = fs::last_write_time(it->path(), entry_ec);
    const int64_t ms = entry_ec ? b->created_ms_
                                : std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::file_clock::to_sys(mtime).time_since_epoch())
                                      .count();
    b->objects_[key] = Meta{.size = static_cast<int64_t>(bytes.size()),
                            .etag = ETagOf(bytes),
                            .last_modified_ms = WholeSecondMillis(ms),
                            .data = {}};
  }
  if (ec) {
    return S3InvalidArgument(
        fmt::format("The directory of bucket {} cannot be read: {}", name, ec.message()));
  }
  return b;
}

absl::Status BucketStore::CheckKey(std::string_view key) const {
  if (key.size() > kMaxObjectKeyBytes) {
    return MakeError(absl::StatusCode::kInvalidArgument, kKeyTooLongError, "Your key is too long.");
  }
  if (key.empty()) {
    return S3InvalidArgument(fmt::format("An object key is 1 to {} bytes; this one has {}.",
                                         kMaxObjectKeyBytes, key.size()));
  }
  if (files_ != nullptr && !FileKeyOk(key)) {
    return S3InvalidArgument(fmt::format(
        "Key '{}' cannot be stored in the directory of bucket {} (a '.' or '..' segment, an "
        "empty segment, a segment over {} bytes, a leading or trailing '/', a NUL byte, or "
        ".riffle-tmp/).",
        key, name_, kMaxFileNameBytes));
  }
  return absl::OkStatus();
}

absl::Status BucketStore::PutObject(std::string_view key, std::string_view data) {
  if (absl::Status s = CheckKey(key); !s.ok()) return s;
  if (core_.faults.active()) {
    if (absl::Status s = InjectS3(core_, "PutObject", name_, arn_, key); !s.ok()) return s;
  }
  Meta meta{.size = static_cast<int64_t>(data.size()),
            .etag = ETagOf(data),
            .last_modified_ms = WholeSecondMillis(core_.clock.NowMillis()),
            .data = {}};
  std::unique_lock<std::mutex> files_lock(files_mu_, std::defer_lock);
  if (files_ != nullptr) {
    // The layout check and the write under one lock: two puts of "a" and "a/b" at once
    // otherwise both passed the check and one failed in the file system.
    files_lock.lock();
    if (absl::Status s = CheckFileLayout(key); !s.ok()) return s;
    RemoveEmptyDirectoriesAt(key);
    if (absl::Status s = files_->PutObject(key, data); !s.ok()) {
      // The write made the key's directories before it failed: empty ones would stand
      // where a later key needs a file ("a" after a failed "a/b").
      RemoveEmptyParents(key);
      return s;
    }
  } else {
    meta.data.assign(data.data(), data.size());
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) {
    objects_.emplace(std::string(key), std::move(meta));
  } else {
    it->second = std::move(meta);
  }
  return absl::OkStatus();
}

absl::Status BucketStore::CheckFileLayout(std::string_view key) const {
  // S3 holds "a" and "a/b" side by side; a directory cannot hold a file "a" and a
  // directory "a" at once.
  std::lock_guard<std::mutex> lock(mu_);
  for (std::size_t slash = key.find('/'); slash != std::string_view::npos;
       slash = key.find('/', slash + 1)) {
    if (objects_.contains(key.substr(0, slash))) {
      return S3InvalidArgument(fmt::format(
          "Key '{}' cannot be stored in the directory of bucket {}: object '{}' is a file "
          "where the key needs a directory.",
          key, name_, key.substr(0, slash)));
    }
  }
  const std::string below = std::string(key) + '/';
  auto it = objects_.lower_bound(below);
  if (it != objects_.end() && it->first.starts_with(below)) {
    return S3InvalidArgument(fmt::format(
        "Key '{}' cannot be stored in the directory of bucket {}: it is the directory of "
        "object '{}'.",
        key, name_, it->first));
  }
  return absl::OkStatus();
}

std::vector<std::pair<std::string, BucketStore::Meta>> BucketStore::Scan(std::string_view prefix,
                                                                         std::string_view after,
                                                                         bool skip_after_prefix,
                                                                         std::size_t limit) const {
  std::vector<std::pair<std::string, Meta>> out;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = after.empty() ? objects_.lower_bound(prefix) : objects_.upper_bound(after);
  if (!after.empty() && after < prefix) it = objects_.lower_bound(prefix);
  for (; it != objects_.end() && out.size() < limit; ++it) {
    const std::string& key = it->first;
    if (skip_after_prefix && key.starts_with(after)) continue;
    if (!key.starts_with(prefix)) {
      if (key > prefix) break;  // past every key with the prefix
      continue;
    }
    out.emplace_back(key, MetadataOf(it->second));
  }
  return out;
}

std::optional<BucketStore::Meta> BucketStore::Head(std::string_view key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return std::nullopt;
  return MetadataOf(it->second);
}

BucketStore::Meta BucketStore::MetadataOf(const Meta& m) {
  // Not the body: a listing or a HEAD costs the same whatever the objects' sizes.
  return Meta{.size = m.size, .etag = m.etag, .last_modified_ms = m.last_modified_ms, .data = {}};
}

void BucketStore::RemoveEmptyDirectoriesAt(std::string_view key) const {
  // No object is at or under `key` (CheckFileLayout), yet a directory may stand where its
  // file goes: left by a process killed between making a key's directories and renaming
  // its file in, or between deleting a file and its emptied directories. Empty ones go,
  // deepest first; a directory holding a file stays, and the write then reports it. Only
  // real directories, never a symbolic link or what it points to; rmdir() removes nothing
  // but an empty directory.
  std::error_code ec;
  const std::filesystem::path target(PathOf(key));
  if (std::filesystem::symlink_status(target, ec).type() != std::filesystem::file_type::directory) {
    return;
  }
  std::vector<std::filesystem::path> dirs{target};
  for (auto it = std::filesystem::recursive_directory_iterator(target, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->symlink_status(ec).type() == std::filesystem::file_type::directory) {
      dirs.push_back(it->path());
    }
  }
  // A child's path is longer than its parent's: the longest first removes children first.
  std::sort(dirs.begin(), dirs.end(),
            [](const auto& a, const auto& b) { return a.native().size() > b.native().size(); });
  for (const auto& dir : dirs) (void)::rmdir(dir.c_str());
}

void BucketStore::RemoveEmptyParents(std::string_view key) const {
  // S3's keys are flat: "a" may be put once "a/b" is gone. rmdir() removes only an empty
  // directory: one still holding another key stays, and so does a file another writer of
  // the directory put where this key needed a directory.
  const std::filesystem::path root(files_->directory());
  for (std::filesystem::path dir = std::filesystem::path(PathOf(key)).parent_path();
       dir != root && dir.string().size() > root.string().size(); dir = dir.parent_path()) {
    if (::rmdir(dir.c_str()) != 0) break;
  }
}

std::string BucketStore::PathOf(std::string_view key) const {
  return (std::filesystem::path(files_->directory()) / std::string(key)).string();
}

absl::StatusOr<std::string> BucketStore::Read(std::string_view key, Meta* meta) const {
  std::unique_lock<std::mutex> files_lock(files_mu_, std::defer_lock);
  if (files_ != nullptr) files_lock.lock();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return NoSuchKeyError(key);
    *meta = it->second;
    if (files_ == nullptr) return std::move(meta->data);
    meta->data.clear();
  }
  std::ifstream f(PathOf(key), std::ios::binary);
  if (!f) return NoSuchKeyError(key);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void BucketStore::Delete(std::string_view key) {
  std::unique_lock<std::mutex> files_lock(files_mu_, std::defer_lock);
  if (files_ != nullptr) files_lock.lock();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return;
  if (files_ != nullptr) {
    std::error_code ec;
    std::filesystem::remove(PathOf(key), ec);
    RemoveEmptyParents(key);
  }
  objects_.erase(it);
}

namespace {

// S3's bucket naming rules (general purpose buckets).
bool ValidBucketName(std::string_view n) {
  if (n.size() < 3 || n.size() > 63) return false;
  auto letter_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!letter_or_digit(n.front()) || !letter_or_digit(n.back())) return false;
  if (!std::all_of(n.begin(), n.end(),
                   [&](char c) { return letter_or_digit(c) || c == '.' || c == '-'; })) {
    return false;
  }
  if (n.find("..") != std::string_view::npos) return false;
  for (std::string_view p : {"xn--", "sthree-", "amzn-s3-demo-"}) {
    if (n.starts_with(p)) return false;
  }
  for (std::string_view s : {"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"}) {
    if (n.ends_with(s)) return false;
  }
  // Not an IPv4 address (four dot-separated decimal groups).
  int groups = 0;
  bool digits_only = true;
  std::size_t start = 0;
  while (start <= n.size()) {
    std::size_t dot = n.find('.', start);
    if (dot == std::string_view::npos) dot = n.size();
    const std::string_view g = n.substr(start, dot - start);
    if (g.empty() ||
        !std::all_of(g.begin(), g.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      digits_only = false;
    }
    ++groups;
    start = dot + 1;
  }
  return !(digits_only && groups == 4);
}

absl::Status InvalidBucketNameError(std::string_view bucket) {
  return S3Error(absl::StatusCode::kInvalidArgument, kInvalidBucketName,
                 "The specified bucket is not valid.", "BucketName", bucket);
}

// ContinuationToken: the last key (or common prefix) returned, with a keyed check so that
// a token of another bucket or account, or an altered one, is refused.
std::string TokenCheck(uint64_t secret, std::string_view bucket, std::string_view after,
                       bool rolled) {
  const std::string text = fmt::format("{:x}/{}/{}/{}", secret, bucket, rolled ? 1 : 0, after);
  return fmt::format("{:016x}", absl::Uint128Low64(Xxh3HashKey(text)));
}

std::string EncodeToken(uint64_t secret, std::string_view bucket, std::string_view after,
                        bool rolled) {
  std::string out = TokenCheck(secret, bucket, after, rolled);
  out += rolled ? 'p' : 'k';
  for (unsigned char c : after) fmt::format_to(std::back_inserter(out), "{:02x}", c);
  return out;
}

bool DecodeToken(uint64_t secret, std::string_view bucket, std::string_view token,
                 std::string* after, bool* rolled) {
  if (token.size() < 17 || (token[16] != 'p' && token[16] != 'k') || (token.size() - 17) % 2 != 0) {
    return false;
  }
  *rolled = token[16] == 'p';
  after->clear();
  for (std::size_t i = 17; i < token.size(); i += 2) {
    unsigned v = 0;
    for (std::size_t j = i; j < i + 2; ++j) {
      const char c = token[j];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<unsigned>(c - 'a' + 10);
      } else {
        return false;
      }
    }
    after->push_back(static_cast<char>(v));
  }
  return token.substr(0, 16) == TokenCheck(secret, bucket, *after, *rolled);
}

}  // namespace
}  // namespace detail

using detail::BucketStore;

S3::S3(detail::AccountCore& core)
    : core_(core), registry_(std::make_unique<detail::BucketRegistry>()) {}

S3::~S3() = default;

std::string S3::BucketArn(std::string_view bucket) {
  return fmt::format("arn:aws:s3:::{}", bucket);
}

std::string S3::ArnOf(std::string_view bucket) const {
  return fmt::format("arn:{}:s3:::{}", detail::ArnPartition(core_.region()), bucket);
}

std::shared_ptr<BucketStore> S3::FindBucket(std::string_view name) const {
  std::lock_guard<std::mutex> lock(registry_->mu);
  auto it = registry_->buckets.find(name);
  return it == registry_->buckets.end() ? nullptr : it->second;
}

absl::StatusOr<CreateBucketOutput> S3::CreateBucket(const CreateBucketInput& in) {
  if (!detail::ValidBucketName(in.bucket)) return detail::InvalidBucketNameError(in.bucket);
  if (core_.faults.active()) {
    if (absl::Status s = detail::InjectS3(core_, "CreateBucket", in.bucket, ArnOf(in.bucket), {});
        !s.ok()) {
      return s;
    }
  }
  std::lock_guard<std::mutex> lock(registry_->mu);
  if (registry_->buckets.contains(in.bucket)) {
    // As S3 documents it: in us-east-1, for legacy compatibility, creating a bucket the
    // account already owns succeeds (the bucket is left as it is).
    if (core_.region() == "us-east-1") {
      return CreateBucketOutput{.location = fmt::format("/{}", in.bucket)};
    }
    return detail::S3Error(
        absl::StatusCode::kAlreadyExists, kBucketAlreadyOwnedByYou,
        "Your previous request to create the named bucket succeeded and you already "
        "own it.",
        "BucketName", in.bucket);
  }
  auto store = BucketStore::Create(core_, in.bucket, in.directory);
  if (!store.ok()) return store.status();
  registry_->buckets.emplace(std::string(in.bucket), *std::move(store));
  return CreateBucketOutput{.location = fmt::format("/{}", in.bucket)};
}

absl::StatusOr<ListBucketsOutput> S3::ListBuckets() {
  if (core_.faults.active()) {
    if (absl::Status s = core_.Inject("ListBuckets", {}, {}, {}); !s.ok()) return s;
  }
  ListBucketsOutput out;
  std::lock_guard<std::mutex> lock(registry_->mu);
  for (const auto& [name, b] : registry_->buckets) {
    out.buckets.push_back({.name = name, .creation_date = absl::FromUnixMillis(b->created_ms())});
  }
  return out;
}

namespace {

// The bucket for a call, after the fault plan.
absl::StatusOr<std::shared_ptr<BucketStore>> Resolve(const S3& s3, detail::AccountCore& core,
                                                     std::string_view operation,
                                                     std::string_view bucket,
                                                     std::string_view key) {
  std::shared_ptr<BucketStore> b = s3.FindBucket(bucket);
  if (core.faults.active()) {
    if (absl::Status s = detail::InjectS3(core, operation, bucket, s3.ArnOf(bucket), key);
        !s.ok()) {
      return s;
    }
  }
  if (b == nullptr) return detail::NoSuchBucketError(bucket);
  return b;
}

}  // namespace

absl::StatusOr<PutObjectOutput> S3::PutObject(const PutObjectInput& in) {
  std::shared_ptr<BucketStore> b = FindBucket(in.bucket);
  if (b == nullptr) {
    // As every S3 call: the fault plan first (a bucket's own puts consult it in PutObject).
    if (core_.faults.active()) {
      if (absl::Status s =
              detail::InjectS3(core_, "PutObject", in.bucket, ArnOf(in.bucket), in.key);
          !s.ok()) {
        return s;
      }
    }
    return detail::NoSuchBucketError(in.bucket);
  }
  if (absl::Status s = b->PutObject(in.key, in.body); !s.ok()) return s;
  return PutObjectOutput{.etag = detail::ETagOf(in.body)};
}

absl::StatusOr<ListObjectsV2Output> S3::ListObjectsV2(const ListObjectsV2Input& in) {
  auto b = Resolve(*this, core_, "ListObjectsV2", in.bucket, {});
  if (!b.ok()) return b.status();
  const int max_keys = in.max_keys.value_or(kMaxListObjectsKeys);
  if (max_keys < 0) {
    return detail::S3InvalidArgument(fmt::format(
        "Argument max-keys must be an integer between 0 and 2147483647, not {}.", max_keys));
  }
  std::string after(in.start_after);
  bool rolled = false;
  if (!in.continuation_token.empty() &&
      !detail::DecodeToken(core_.secret, in.bucket, in.continuation_token, &after, &rolled)) {
    return detail::S3InvalidArgument("The continuation token provided is incorrect");
  }
  ListObjectsV2Output out;
  out.name = std::string(in.bucket);
  out.prefix = std::string(in.prefix);
  out.delimiter = std::string(in.delimiter);
  out.max_keys = max_keys;
  out.continuation_token = std::string(in.continuation_token);
  out.start_after = std::string(in.start_after);
  const std::size_t want = static_cast<std::size_t>(std::min(max_keys, kMaxListObjectsKeys));
  if (want == 0) return out;

  // Walks the keys in order in chunks; a key with the delimiter after the prefix rolls up
  // into its common prefix, and the keys under a prefix already returned are skipped.
  std::string last;  // the last entry returned (a key or a common prefix)
  bool last_rolled = false;
  bool more = false;
  constexpr std::size_t kChunk = 1024;
  while (true) {
    auto chunk = (*b)->Scan(in.prefix, after, rolled, kChunk);
    for (auto& [key, meta] : chunk) {
      after = key;
      rolled = false;
      std::string_view rolled_up;
      if (!in.delimiter.empty()) {
        const std::size_t d = key.find(in.delimiter, in.prefix.size());
        if (d != std::string::npos) {
          rolled_up = std::string_view(key).substr(0, d + in.delimiter.size());
        }
      }
      if (!rolled_up.empty() && last_rolled && rolled_up == last) continue;
      // As S3 lists: a common prefix is an entry too, returned only if it sorts after
      // StartAfter (the keys under it are skipped with it).
      if (!rolled_up.empty() && in.continuation_token.empty() && !in.start_after.empty() &&
          rolled_up <= in.start_after) {
        after = std::string(rolled_up);
        rolled = true;
        continue;
      }
      if (static_cast<std::size_t>(out.key_count) == want) {
        more = true;
        break;
      }
      if (!rolled_up.empty()) {
        out.common_prefixes.push_back({.prefix = std::string(rolled_up)});
        last = std::string(rolled_up);
        last_rolled = true;
        after = last;
        rolled = true;
      } else {
        out.contents.push_back({.key = key,
                                .last_modified = absl::FromUnixMillis(meta.last_modified_ms),
                                .etag = meta.etag,
                                .size = meta.size});
        last = key;
        last_rolled = false;
      }
      ++out.key_count;
    }
    if (more || chunk.size() < kChunk) break;
  }
  if (more) {
    out.is_truncated = true;
    out.next_continuation_token = detail::EncodeToken(core_.secret, in.bucket, last, last_rolled);
  }
  return out;
}

absl::StatusOr<GetObjectOutput> S3::GetObject(const GetObjectInput& in) {
  auto b = Resolve(*this, core_, "GetObject", in.bucket, in.key);
  if (!b.ok()) return b.status();
  BucketStore::Meta meta;
  auto body = (*b)->Read(in.key, &meta);
  if (!body.ok()) return body.status();
  GetObjectOutput out;
  out.body = *std::move(body);
  out.content_length = static_cast<int64_t>(out.body.size());
  out.etag = std::move(meta.etag);
  out.last_modified = absl::FromUnixMillis(meta.last_modified_ms);
  return out;
}

absl::StatusOr<HeadObjectOutput> S3::HeadObject(const HeadObjectInput& in) {
  auto b = Resolve(*this, core_, "HeadObject", in.bucket, in.key);
  if (!b.ok()) return b.status();
  std::optional<BucketStore::Meta> meta = (*b)->Head(in.key);
  if (!meta) return detail::NoSuchKeyError(in.key);
  return HeadObjectOutput{.content_length = meta->size,
                          .etag = std::move(meta->etag),
                          .last_modified = absl::FromUnixMillis(meta->last_modified_ms)};
}

absl::Status S3::DeleteObject(const DeleteObjectInput& in) {
  auto b = Resolve(*this, core_, "DeleteObject", in.bucket, in.key);
  if (!b.ok()) return b.status();
  (*b)->Delete(in.key);
  return absl::OkStatus();
}

}  // namespace riffle
