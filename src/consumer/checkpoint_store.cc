// The checkpoint stores: a map, and files replaced atomically.
#include "riffle/checkpoint_store.h"

#include <algorithm>
#include <fstream>

#include "common/file_util.h"
#include "common/names.h"
#include "fmt/format.h"
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
