#pragma once

// Small helpers over file paths as the configuration gives them.

#include <string>

namespace sidecar {

// The folder holding `path`: "." for a bare file name, "/" for a file at the root.
inline std::string FolderOf(const std::string& path) {
  std::string::size_type slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace sidecar
