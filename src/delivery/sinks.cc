#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "common/file_util.h"
#include "fmt/format.h"
#include "riffle/sink.h"

namespace riffle {
namespace {

constexpr std::string_view kTempDirectory = ".riffle-tmp";
// Held exclusively while a Create cleans up and takes its owner lock, so that no cleaner
// can take an owner's lock in the instant between the lock file's creation and its flock.
constexpr std::string_view kCleanupLock = "cleanup.lock";
constexpr std::string_view kLockSuffix = ".lock";

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

// "<pid>-<16 hex digits>": the form of every owner name.
bool IsOwnerName(std::string_view name) {
  const size_t dash = name.find('-');
  if (dash == 0 || dash == std::string_view::npos || name.size() - dash - 1 != 16) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = i < dash ? (c >= '0' && c <= '9')
                             : i == dash || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!ok) return false;
  }
  return true;
}

// "<owner>-<digits>": a temporary of `owner`.
bool IsTemporaryOf(std::string_view name, std::string_view owner) {
  if (name.size() <= owner.size() + 1 || name.substr(0, owner.size()) != owner ||
      name[owner.size()] != '-') {
    return false;
  }
  const std::string_view n = name.substr(owner.size() + 1);
  return std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// flock(2), retried on EINTR.
int Flock(int fd, int operation) {
  int rc;
  do {
    rc = ::flock(fd, operation);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

// Opens `path` and takes `lock_operation` on it; -1 with errno set on failure.
int OpenLocked(const std::string& path, int flags, int lock_operation) {
  const int fd = ::open(path.c_str(), flags | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  if (Flock(fd, lock_operation) != 0) {
    const int error = errno;
    ::close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

// Deletes the temporaries of every owner whose lock can be taken: its FileSink is gone.
// Best effort: a file that cannot be removed stays for the next Create.
void RemoveAbandoned(const std::filesystem::path& temp_dir) {
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(temp_dir, ec)) {
    names.push_back(entry.path().filename().string());
  }
  for (const std::string& lock_name : names) {
    const std::string_view name = lock_name;
    if (name.size() <= kLockSuffix.size() || !name.ends_with(kLockSuffix)) continue;
    const std::string_view owner = name.substr(0, name.size() - kLockSuffix.size());
    if (!IsOwnerName(owner)) continue;
    const std::string lock_path = (temp_dir / lock_name).string();
    const int fd = OpenLocked(lock_path, 0, LOCK_EX | LOCK_NB);
    if (fd < 0) continue;  // held: the owner lives (or the lock cannot be judged)
    bool all_removed = true;
    for (const std::string& temp : names) {
      if (IsTemporaryOf(temp, owner) && ::unlink((temp_dir / temp).c_str()) != 0 &&
          errno != ENOENT) {
        all_removed = false;
      }
    }
    if (all_removed) ::unlink(lock_path.c_str());
    ::close(fd);
  }
}

}  // namespace

FileSink::FileSink(Options options, std::string owner, int owner_fd)
    : options_(std::move(options)), owner_(std::move(owner)), owner_fd_(owner_fd) {}

FileSink::~FileSink() {
  if (owner_fd_ < 0) return;  // no lock support
  const std::string lock_path = (std::filesystem::path(options_.directory) / kTempDirectory /
                                 fmt::format("{}{}", owner_, kLockSuffix))
                                    .string();
  ::unlink(lock_path.c_str());  // unlinked before the lock is released: no cleaner races it
  ::close(owner_fd_);
}

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
  const std::filesystem::path temp_dir = std::filesystem::path(options.directory) / kTempDirectory;
  const std::string cleanup_path = (temp_dir / kCleanupLock).string();
  const int cleanup_fd = OpenLocked(cleanup_path, O_CREAT, LOCK_EX);
  if (cleanup_fd < 0 && errno != ENOLCK) return IoError("lock", cleanup_path, errno);
  std::random_device random;
  const std::string owner = fmt::format("{}-{:08x}{:08x}", ::getpid(), random(), random());
  int owner_fd = -1;
  if (cleanup_fd >= 0) {
    RemoveAbandoned(temp_dir);
    const std::string owner_path = (temp_dir / fmt::format("{}{}", owner, kLockSuffix)).string();
    owner_fd = ::open(owner_path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
    absl::Status status;
    if (owner_fd < 0) {
      status = IoError("open", owner_path, errno);
    } else if (Flock(owner_fd, LOCK_EX | LOCK_NB) != 0) {
      status = IoError("lock", owner_path, errno);
      ::unlink(owner_path.c_str());
      ::close(owner_fd);
    }
    ::close(cleanup_fd);
    if (!status.ok()) return status;
  }
  // Without lock support (ENOLCK) no Create can judge an owner, so none deletes anything:
  // this sink's temporaries are safe, and a crash may leave them behind.
  return std::unique_ptr<FileSink>(new FileSink(std::move(options), owner, owner_fd));
}

absl::Status FileSink::CheckKey(std::string_view key) const { return ValidateKey(key); }

absl::Status FileSink::PutObject(std::string_view key, std::string_view data) {
  if (absl::Status status = ValidateKey(key); !status.ok()) return status;
  const std::filesystem::path root(options_.directory);
  const std::filesystem::path target = root / std::filesystem::path(key);
  std::error_code ec;
  std::filesystem::create_directories(target.parent_path(), ec);
  if (ec) return IoError("create_directories", target.parent_path().string(), ec.value());

  // The temporary name is unique per sink and call, so concurrent writers of the same key
  // each rename a complete file and the last rename wins.
  const std::string temp_name =
      fmt::format("{}-{}", owner_, next_temp_id_.fetch_add(1, std::memory_order_relaxed));
  const detail::AtomicWriteOptions write{.fsync = options_.fsync,
                                         .error_code = absl::StatusCode::kUnavailable,
                                         .error_name = kFileSinkIOError};
  if (absl::Status s = detail::WriteFileAtomically((root / kTempDirectory).string(), temp_name,
                                                   target.string(), data, write);
      !s.ok() || !options_.fsync) {
    return s;
  }
  // The write synced the target's own directory. The key's other directories may be new
  // (made by this call, by a concurrent one, or by one that failed before its sync): each
  // one's entry is in its parent, so every parent up to the root is synced too (a clean
  // directory's sync writes nothing).
  for (std::filesystem::path dir = target.parent_path();
       dir.native().size() > root.native().size();) {
    dir = dir.parent_path();
    if (absl::Status s = detail::FsyncDirectory(dir.string(), write); !s.ok()) return s;
  }
  return absl::OkStatus();
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
