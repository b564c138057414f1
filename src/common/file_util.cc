#include "common/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fmt/format.h"

namespace riffle::detail {
namespace {

absl::Status IoError(const AtomicWriteOptions& options, std::string_view what,
                     std::string_view path, int error) {
  return MakeError(options.error_code, options.error_name,
                   fmt::format("{} {} failed: {}", what, path, std::strerror(error)));
}

// The directory a path's last component lives in ("." for a bare name).
std::string ParentOf(std::string_view path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path,
                      const AtomicWriteOptions& options) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError(options, "write", path, errno);
    }
    if (n == 0) return IoError(options, "write", path, EIO);  // no progress: never loop
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FsyncDirectory(const std::string& directory, const AtomicWriteOptions& options) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return IoError(options, "open directory", directory, errno);
  absl::Status status;
  if (::fsync(fd) != 0) status = IoError(options, "fsync directory", directory, errno);
  if (::close(fd) != 0 && status.ok())
    status = IoError(options, "close directory", directory, errno);
  return status;
}

absl::Status WriteFileAtomically(std::string_view temp_directory, std::string_view temp_name,
                                 std::string_view target, std::string_view data,
                                 const AtomicWriteOptions& options) {
  const std::string temp = fmt::format("{}/{}", temp_directory, temp_name);
  const std::string target_path(target);
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError(options, "open", temp, errno);
  absl::Status status = WriteAll(fd, data, temp, options);
  if (status.ok() && options.fsync && ::fsync(fd) != 0) {
    status = IoError(options, "fsync", temp, errno);
  }
  // close() reports write-back errors some file systems (NFS) defer to it; on Linux the
  // descriptor is released even when it fails, so it is never retried.
  if (::close(fd) != 0 && status.ok()) status = IoError(options, "close", temp, errno);
  if (status.ok() && ::rename(temp.c_str(), target_path.c_str()) != 0) {
    status = IoError(options, fmt::format("rename {} to", temp), target_path, errno);
  }
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }
  if (options.fsync) return FsyncDirectory(ParentOf(target_path), options);
  return absl::OkStatus();
}

}  // namespace riffle::detail
