#pragma once

// Secrets (a provider's auth token, a webhook's signing secret) are never written in the
// configuration file itself: the configuration names a file or an environment variable and
// the secret is read from there when providers are made.

#include <string>

#include "common/result.h"

namespace sidecar {

// Reads one secret from `file` when it is not empty, else from the environment variable
// named `env_name`; the other is ignored.
//
// A relative `file` is looked up in $CREDENTIALS_DIRECTORY when that variable is set (as
// systemd's LoadCredential= does), else relative to the working directory. The file must be
// a regular file (symbolic links are followed) readable by its owner only (mode & 0077 == 0)
// and at most 64 KiB. One trailing "\n" is stripped, from the file or the variable.
//
// Errors have code "invalid_secret": neither source named, a variable that is not set, a
// file that cannot be opened or read, is not a regular file, is accessible by group or
// others or is too large, and a secret that is empty. Messages name the file or the variable
// but never hold any of the secret.
Result<std::string> ReadSecret(const std::string& file, const std::string& env_name);

// Where a credential named `name` would be: $CREDENTIALS_DIRECTORY/name when `name` is a
// relative path and the variable is set; "" otherwise. The file may not exist.
std::string CredentialPath(const std::string& name);

}  // namespace sidecar
