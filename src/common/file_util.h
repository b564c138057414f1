// File helpers shared by the stores that write files: FileSink (src/delivery/sinks.cc) and
// FileCheckpointStore (src/consumer/checkpoint_store.cc).
//
// Thread safety: the functions are thread-safe; concurrent writes of one target each rename
// a complete file and the last rename wins, provided their temporary names differ.
#ifndef RIFFLE_COMMON_FILE_UTIL_H_
#define RIFFLE_COMMON_FILE_UTIL_H_

#include <string>
#include <string_view>

#include "riffle/status.h"

namespace riffle::detail {

struct AtomicWriteOptions {
  // Default false. True fsyncs the file before the rename and the target's directory after
  // it, so that the new contents survive a power loss once the call returns OK.
  bool fsync = false;
  // The canonical code and the error name every error carries.
  absl::StatusCode error_code = absl::StatusCode::kInternal;
  std::string_view error_name = kInternalFailure;
};

// Replaces `target` with `data` atomically: writes `data` to `temp_directory`/`temp_name`
// (created, or truncated if it exists, mode 0644), optionally fsyncs it, renames it to
// `target`, optionally fsyncs the target's directory. A reader of `target` sees the old
// contents or the new ones, never a mix.
//
// Every failure (open, write, fsync, close, rename, directory open or fsync) returns an
// error naming the operation, the path and errno's text. A failure before the rename
// removes the temporary and leaves `target` as it was; a failure to sync the directory
// comes after the rename: `target` then has the new contents, not known to be durable.
// REQUIRES: `temp_directory` is on the file system of `target` (rename does not cross
// file systems) and no other writer uses `temp_name` at the same time.
[[nodiscard]] absl::Status WriteFileAtomically(std::string_view temp_directory,
                                               std::string_view temp_name, std::string_view target,
                                               std::string_view data,
                                               const AtomicWriteOptions& options = {});

// fsyncs `directory` (its entries: a file renamed or a directory made in it), with the
// errors named as WriteFileAtomically names them.
[[nodiscard]] absl::Status FsyncDirectory(const std::string& directory,
                                          const AtomicWriteOptions& options);

}  // namespace riffle::detail

#endif  // RIFFLE_COMMON_FILE_UTIL_H_
