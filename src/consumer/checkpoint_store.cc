// The checkpoint stores: a map, and files replaced atomically.
#include "riffle/checkpoint_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "fmt/format.h"
#include "common/names.h"
#include "riffle/status.h"

namespace riffle {
namespace {

bool ValidToken(std::string_view s) {
  return !s.empty() && s.size() <= 256 && std::none_of(s.begin(), s.end(), [](char c) {
    return c == ' ' || c == '\n' || c == '\r';
  });
}

absl::Status CheckArguments(std::string_view application, std::string_view shard_id,
                            std::optional<std::string_view> checkpoint) {
  if (!detail::IsValidName(application)) {
    return InvalidArgumentError(fmt::format(
        "ApplicationName '{}' is invalid: it must be 1 to 128 characters of [a-zA-Z0-9_.-].",
        application.substr(0, 200)));
  }
  if (!ValidToken(shard_id)) {
    return InvalidArgumentError("ShardId must be 1 to 256 characters without spaces or newlines.");
  }
  if (checkpoint && !ValidToken(*checkpoint)) {
    return InvalidArgumentError(
        "Checkpoint must be 1 to 256 characters without spaces or newlines.");
  }
  return absl::OkStatus();
}

absl::Status IoError(std::string_view what, const std::string& path) {
  return InternalFailureError(fmt::format("{} {}: {}", what, path, std::strerror(errno)));
}

}  // namespace

absl::StatusOr<std::optional<std::string>> InMemoryCheckpointStore::GetCheckpoint(
    std::string_view application, std::string_view shard_id) {
  if (auto s = CheckArguments(application, shard_id, std::nullopt); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = checkpoints_.find(std::pair<std::string, std::string>(application, shard_id));
  if (it == checkpoints_.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
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
  Table table;
  const std::string path = PathFor(application);
  std::ifstream in(path);
  if (in) {
    std::string line;
    while (std::getline(in, line)) {
      const std::size_t space = line.find(' ');
      if (space == std::string::npos) {
        return InternalFailureError(fmt::format("Checkpoint file {} is malformed.", path));
      }
      table[line.substr(0, space)] = line.substr(space + 1);
    }
  }
  return &tables_.emplace(std::string(application), std::move(table)).first->second;
}

absl::StatusOr<std::optional<std::string>> FileCheckpointStore::GetCheckpoint(
    std::string_view application, std::string_view shard_id) {
  if (auto s = CheckArguments(application, shard_id, std::nullopt); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<Table*> table = Load(application);
  if (!table.ok()) return table.status();
  auto it = (*table)->find(shard_id);
  if (it == (*table)->end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

absl::Status FileCheckpointStore::PutCheckpoint(std::string_view application,
                                                std::string_view shard_id,
                                                std::string_view checkpoint) {
  if (auto s = CheckArguments(application, shard_id, checkpoint); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<Table*> loaded = Load(application);
  if (!loaded.ok()) return loaded.status();
  Table next = **loaded;
  next[std::string(shard_id)] = std::string(checkpoint);
  std::string contents;
  for (const auto& [shard, value] : next) contents += fmt::format("{} {}\n", shard, value);

  const std::string path = PathFor(application);
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("Cannot create", tmp);
  std::size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      absl::Status s = IoError("Cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status s = IoError("Cannot sync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status s = IoError("Cannot rename over", path);
    ::unlink(tmp.c_str());
    return s;
  }
  // The rename itself is durable once the directory is synced.
  const int dir = ::open(directory_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  **loaded = std::move(next);
  return absl::OkStatus();
}

}  // namespace riffle
