#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "common/file_util.h"
#include "fmt/format.h"
#include "riffle/sink.h"

namespace riffle {
namespace {

constexpr std::string_view kTempDirectory = ".riffle-tmp";

absl::Status IoError(std::string_view what, const std::string& path, int error) {
  return MakeError(absl::StatusCode::kUnavailable, kFileSinkIOError,
                   fmt::format("{} {} failed: {}", what, path, std::strerror(error)));
}

// Keys may use any bytes S3 allows except those that would leave the directory or collide
// with the temporary area.
absl::Status ValidateKey(std::string_view key) {
  if (key.empty()) return InvalidArgumentError("Key is empty; it must be 1 to 1024 bytes.");
  if (key.size() > 1024) {
    return InvalidArgumentError(
        fmt::format("Key is {} bytes; it must be 1 to 1024 bytes.", key.size()));
  }
  if (key.front() == '/' || key.find('\0') != std::string_view::npos) {
    return InvalidArgumentError(
        fmt::format("Key '{}' is absolute or contains a NUL byte; FileSink keys must be "
                    "relative paths.",
                    key));
  }
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    const std::string_view segment = key.substr(start, end - start);
    if (segment == "." || segment == ".." || (start == 0 && segment == kTempDirectory)) {
      return InvalidArgumentError(
          fmt::format("Key '{}' has a '{}' segment; FileSink keys must stay inside the directory.",
                      key, segment));
    }
    start = end + 1;
  }
  if (key.back() == '/') {
    return InvalidArgumentError(fmt::format("Key '{}' ends with '/'; it names no object.", key));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<FileSink>> FileSink::Create(Options options) {
  if (options.directory.empty()) {
    return InvalidArgumentError("FileSink directory is empty; it must name a directory.");
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(options.directory) / kTempDirectory,
                                      ec);
  if (ec) {
    return MakeError(
        absl::StatusCode::kUnavailable, kFileSinkIOError,
        fmt::format("create_directories {} failed: {}", options.directory, ec.message()));
  }
  return std::unique_ptr<FileSink>(new FileSink(std::move(options)));
}

absl::Status FileSink::PutObject(std::string_view key, std::string_view data) {
  if (absl::Status status = ValidateKey(key); !status.ok()) return status;
  const std::filesystem::path root(options_.directory);
  const std::filesystem::path target = root / std::filesystem::path(key);
  std::error_code ec;
  std::filesystem::create_directories(target.parent_path(), ec);
  if (ec) return IoError("create_directories", target.parent_path().string(), ec.value());

  // The temporary name is unique per process and call, so concurrent writers of the same
  // key each rename a complete file and the last rename wins.
  const std::string temp_name =
      fmt::format("{}-{}", ::getpid(), next_temp_id_.fetch_add(1, std::memory_order_relaxed));
  return detail::WriteFileAtomically((root / kTempDirectory).string(), temp_name, target.string(),
                                     data,
                                     {.fsync = options_.fsync,
                                      .error_code = absl::StatusCode::kUnavailable,
                                      .error_name = kFileSinkIOError});
}

absl::Status MemorySink::PutObject(std::string_view key, std::string_view data) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) {
    objects_.emplace(std::string(key), std::string(data));
  } else {
    it->second.assign(data);
  }
  ++put_count_;
  return absl::OkStatus();
}

std::map<std::string, std::string> MemorySink::Objects() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {objects_.begin(), objects_.end()};
}

std::vector<std::string> MemorySink::Keys() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> keys;
  keys.reserve(objects_.size());
  for (const auto& [key, data] : objects_) keys.push_back(key);
  return keys;
}

std::optional<std::string> MemorySink::Get(std::string_view key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

size_t MemorySink::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return objects_.size();
}

uint64_t MemorySink::put_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return put_count_;
}

void MemorySink::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  objects_.clear();
}

}  // namespace riffle
