// Checkpoint files: FileCheckpointStore reading arbitrary file contents, against the
// lenient reading rules checkpoint_store.h documents (blank and malformed lines skipped,
// "\r\n" read as "\n", an unterminated last line refused with InvalidCheckpointException
// for its shard only). Then a PutCheckpoint, and a fresh store reading the file again:
// the new checkpoint is there, every other readable shard keeps its checkpoint, the
// unterminated line stays as it was, and no temporary file is left behind (the put's lock
// file, app.checkpoints.lock, stays by design: other processes may wait on it).
//
// Input: the file's contents.
#include <filesystem>
#include <fstream>

#include "fuzz_support.h"
#include "riffle/checkpoint_store.h"

namespace {

namespace fs = std::filesystem;
using riffle_fuzz::Printable;

const fs::path& Directory() {
  static const fs::path* dir = new fs::path(riffle_fuzz::MakeScratchDirectory("checkpoints"));
  return *dir;
}

bool ValidToken(std::string_view s) {
  return !s.empty() && s.size() <= 256 && s.find_first_of(" \n\r") == std::string_view::npos;
}

struct Table {
  std::map<std::string, std::string> checkpoints;
  std::optional<std::pair<std::string, std::string>> unterminated;
};

Table ReferenceParse(std::string_view text) {
  Table t;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    const bool terminated = end != std::string_view::npos;
    std::string_view line = text.substr(0, end);
    text = terminated ? text.substr(end + 1) : std::string_view();
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) continue;
    const std::string_view shard = line.substr(0, space), checkpoint = line.substr(space + 1);
    if (!ValidToken(shard) || !ValidToken(checkpoint)) continue;
    if (terminated) {
      t.checkpoints[std::string(shard)] = std::string(checkpoint);
    } else {
      t.unterminated.emplace(std::string(shard), std::string(checkpoint));
    }
  }
  return t;
}

// What a store reading the file answers for every shard the reference knows.
void CheckStoreReads(riffle::FileCheckpointStore& store, const Table& t, std::string_view when) {
  int n = 0;
  for (const auto& [shard, checkpoint] : t.checkpoints) {
    if (++n > 64) break;
    const auto got = store.GetCheckpoint("app", shard);
    if (t.unterminated && t.unterminated->first == shard) continue;  // checked below
    FUZZ_CHECK(got.ok() && got->has_value() && **got == checkpoint,
               fmt::format("{}: shard '{}' reads {}", when, Printable(shard),
                           got.ok() ? (got->has_value() ? Printable(**got) : "nothing")
                                    : riffle_fuzz::Describe(got.status())));
  }
  if (t.unterminated) {
    const auto got = store.GetCheckpoint("app", t.unterminated->first);
    FUZZ_CHECK(!got.ok() &&
                   riffle::HasErrorName(got.status(), riffle::kInvalidCheckpointException) &&
                   got.status().code() == absl::StatusCode::kDataLoss,
               fmt::format("{}: the unterminated line's shard '{}' was read", when,
                           Printable(t.unterminated->first)));
  }
  const auto absent = store.GetCheckpoint("app", "shard-never-written");
  if (!t.checkpoints.contains("shard-never-written") &&
      !(t.unterminated && t.unterminated->first == "shard-never-written")) {
    FUZZ_CHECK(absent.ok() && !absent->has_value(), "a shard never written has a checkpoint");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path& dir = Directory();
  const std::string_view contents = riffle_fuzz::AsText(data, size);
  const fs::path file = dir / "app.checkpoints";
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  }
  const Table before = ReferenceParse(contents);
  riffle::FileCheckpointStore store(dir.string());
  CheckStoreReads(store, before, "read");

  // Put into a shard of the file (the unterminated one, a readable one) or a new one.
  std::string shard = "shardId-000000000001";
  if (size % 3 == 1 && before.unterminated) shard = before.unterminated->first;
  if (size % 3 == 2 && !before.checkpoints.empty()) shard = before.checkpoints.begin()->first;
  const absl::Status put = store.PutCheckpoint("app", shard, "49000000000000000000000000000000001");
  FUZZ_CHECK(put.ok(), riffle_fuzz::Describe(put));

  Table after = before;
  after.checkpoints[shard] = "49000000000000000000000000000000001";
  if (after.unterminated && after.unterminated->first == shard) after.unterminated.reset();
  CheckStoreReads(store, after, "cached, after the put");
  riffle::FileCheckpointStore fresh(dir.string());
  CheckStoreReads(fresh, after, "reread, after the put");

  std::error_code ec;
  const fs::path lock = dir / "app.checkpoints.lock";
  FUZZ_CHECK(fs::exists(lock, ec), "the put took no lock file");
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    FUZZ_CHECK(e.path() == file || e.path() == lock,
               fmt::format("{} left in the directory", e.path().string()));
  }
  return 0;
}
