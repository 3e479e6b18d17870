#pragma once

// The master key: 32 bytes from libsodium's generator, kept as 64 hex characters in a file
// only its owner may read. Every stored hash and sealed code depends on it; losing it makes
// live challenges unverifiable, nothing worse.

#include <array>
#include <string>

#include "codes/codes.h"
#include "common/result.h"

namespace sidecar {

using MasterKey = std::array<unsigned char, kMasterKeySize>;

// Reads the key at `path`, creating it (mode 0600, written then fsynced) when it does not
// exist and `create_if_missing` is set. Errors ("invalid_key_file") when the file is
// readable or writable by group or others, is not a regular file, or does not hold exactly
// 64 hex characters (a trailing newline is allowed). Error messages never hold key bytes.
Result<MasterKey> LoadOrCreateKeyFile(const std::string& path, bool create_if_missing);

// Where the key configured as `key_file` is. A relative name that $CREDENTIALS_DIRECTORY
// holds (systemd's LoadCredential=) is that credential: read there, and never created or
// written, since credentials are read-only. Anything else is the path as given (relative
// to the working directory), created on first start when missing.
struct KeyFileLocation {
  std::string path;
  bool credential = false;
};
KeyFileLocation LocateKeyFile(const std::string& key_file);

}  // namespace sidecar
