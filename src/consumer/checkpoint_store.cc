// The checkpoint stores: a map, and files replaced atomically.
#include "riffle/checkpoint_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/file_util.h"
#include "common/names.h"
#include "common/validation.h"
#include "fmt/format.h"
#include "riffle/status.h"

namespace riffle {
namespace {

absl::Status CheckArguments(std::string_view application, std::string_view shard_id,
                            std::optional<std::string_view> checkpoint) {
  if (!detail::IsValidName(application)) {
    return InvalidArgumentError(fmt::format(
        "ApplicationName '{}' is invalid: it must be 1 to 128 characters of [a-zA-Z0-9_.-].",
        application.substr(0, 200)));
  }
  if (!detail::IsCheckpointToken(shard_id)) {
    return InvalidArgumentError("ShardId must be 1 to 256 characters without spaces or newlines.");
  }
  return checkpoint ? detail::CheckCheckpointValue(*checkpoint) : absl::OkStatus();
}

// Reads the whole file at `path` into *text; a missing file reads as empty.
absl::Status ReadIfExists(const std::string& path, std::string* text) {
  text->clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return InternalFailureError(fmt::format("open {} failed: {}", path, std::strerror(errno)));
  }
  char buffer[16384];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      ::close(fd);
      return InternalFailureError(fmt::format("read {} failed: {}", path, std::strerror(error)));
    }
    text->append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return absl::OkStatus();
}

}  // namespace

// Lenient by design: see "Reading is lenient" in checkpoint_store.h.
FileCheckpointStore::Table FileCheckpointStore::ParseTable(std::string_view text) {
  Table table;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    const bool terminated = end != std::string_view::npos;
    if (!terminated) end = text.size();
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) continue;
    const std::string_view shard = line.substr(0, space);
    const std::string_view checkpoint = line.substr(space + 1);
    if (!detail::IsCheckpointToken(shard) || !detail::IsCheckpointToken(checkpoint)) continue;
    if (terminated) {
      table.checkpoints[std::string(shard)] = std::string(checkpoint);
    } else {
      table.unterminated.emplace(std::string(shard), std::string(checkpoint));
    }
  }
  return table;
}

absl::StatusOr<std::optional<std::string>> InMemoryCheckpointStore::GetCheckpoint(
    std::string_view application, std::string_view shard_id) {
  if (auto s = CheckArguments(application, shard_id, std::nullopt); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = checkpoints_.find(std::pair<std::string, std::string>(application, shard_id));
  if (it == checkpoints_.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

absl::Status InMemoryCheckpointStore::DeleteCheckpoint(std::string_view application,
                                                       std::string_view shard_id) {
  if (auto s = CheckArguments(application, shard_id, std::nullopt); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  checkpoints_.erase(std::pair<std::string, std::string>(application, shard_id));
  return absl::OkStatus();
}

absl::Status InMemoryCheckpointStore::PutCheckpoint(std::string_view application,
                                                    std::string_view shard_id,
                                                    std::string_view checkpoint) {
  if (auto s = CheckArguments(application, shard_id, checkpoint); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  checkpoints_[{std::string(application), std::string(shard_id)}] = std::string(checkpoint);
  return absl::OkStatus();
}

FileCheckpointStore::FileCheckpointStore(std::string directory)
    : directory_(std::move(directory)) {}

std::string FileCheckpointStore::PathFor(std::string_view application) const {
  return fmt::format("{}/{}.checkpoints", directory_, application);
}

absl::StatusOr<FileCheckpointStore::Table*> FileCheckpointStore::Load(
    std::string_view application) {
  auto it = tables_.find(application);
  if (it != tables_.end()) return &it->second;
  const std::string path = PathFor(application);
  std::string text;
  if (absl::Status s = ReadIfExists(path, &text); !s.ok()) return s;
  return &tables_.emplace(std::string(application), ParseTable(text)).first->second;
}

absl::StatusOr<std::optional<std::string>> FileCheckpointStore::GetCheckpoint(
    std::string_view application, std::string_view shard_id) {
  if (auto s = CheckArguments(application, shard_id, std::nullopt); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<Table*> table = Load(application);
  if (!table.ok()) return table.status();
  if (const auto& cut = (*table)->unterminated; cut && cut->first == shard_id) {
    return MakeError(absl::StatusCode::kDataLoss, kInvalidCheckpointException,
                     fmt::format("The checkpoint of shard {} is on the unterminated last line of "
                                 "{} and may be truncated ('{}'); PutCheckpoint replaces it.",
                                 shard_id, PathFor(application), cut->second));
  }
  auto it = (*table)->checkpoints.find(shard_id);
  if (it == (*table)->checkpoints.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

absl::Status FileCheckpointStore::PutCheckpoint(std::string_view application,
                                                std::string_view shard_id,
                                                std::string_view checkpoint) {
  if (auto s = CheckArguments(application, shard_id, checkpoint); !s.ok()) return s;
  return Update(application, shard_id, checkpoint);
}

absl::Status FileCheckpointStore::DeleteCheckpoint(std::string_view application,
                                                   std::string_view shard_id) {
  if (auto s = CheckArguments(application, shard_id, std::nullopt); !s.ok()) return s;
  return Update(application, shard_id, std::nullopt);
}

absl::Status FileCheckpointStore::Update(std::string_view application, std::string_view shard_id,
                                         std::optional<std::string_view> checkpoint) {
  std::lock_guard<std::mutex> lock(mu_);
  // Stores of one application (in this process or others) take turns on a lock file, and
  // each applies its put to the file as it is then: none truncates another's temporary or
  // writes back a table without another's latest puts. The kernel releases the lock when
  // its process dies; without one (a file system without locks) the put goes ahead.
  const std::string lock_path = fmt::format("{}/{}.checkpoints.lock", directory_, application);
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd >= 0) {
    while (::flock(lock_fd, LOCK_EX) != 0 && errno == EINTR) {
    }
  }
  struct CloseLock {
    int fd;
    ~CloseLock() {
      if (fd >= 0) ::close(fd);
    }
  } close_lock{lock_fd};
  if (auto cached = tables_.find(application); cached != tables_.end()) tables_.erase(cached);
  absl::StatusOr<Table*> loaded = Load(application);
  if (!loaded.ok()) return loaded.status();
  Table next = **loaded;
  if (checkpoint) {
    next.checkpoints[std::string(shard_id)] = std::string(*checkpoint);
  } else if (auto it = next.checkpoints.find(shard_id); it != next.checkpoints.end()) {
    next.checkpoints.erase(it);
  }
  if (next.unterminated && next.unterminated->first == shard_id) next.unterminated.reset();
  std::string contents;
  for (const auto& [shard, value] : next.checkpoints) {
    contents += fmt::format("{} {}\n", shard, value);
  }
  if (next.unterminated) {
    contents += fmt::format("{} {}", next.unterminated->first, next.unterminated->second);
  }

  // A crash leaves the old file or the new one, never a half-written one; a leftover
  // temporary is truncated and reused by the next put.
  const absl::Status written =
      detail::WriteFileAtomically(directory_, fmt::format("{}.checkpoints.tmp", application),
                                  PathFor(application), contents, {.fsync = true});
  if (!written.ok()) {
    // The file may hold the old table or (the directory sync failed) the new one: read it
    // again at the next call rather than trust the cache.
    tables_.erase(tables_.find(application));
    return written;
  }
  **loaded = std::move(next);
  return absl::OkStatus();
}

}  // namespace riffle
