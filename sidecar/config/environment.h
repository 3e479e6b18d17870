#pragma once

// Internal to config/: overrides from OTP_SIDECAR_* environment variables, merged into the
// parsed file before its values are read, so that they get the same types, checks and
// messages as the file (naming the variable instead of a line).

#include <toml++/toml.h>

#include <map>
#include <string>

#include "config/config.h"
#include "config/toml_reader.h"

namespace sidecar::config_internal {

// Sets in `root` the value of every key named by a variable of `environment`, for the keys
// in `keys` (every key the readers know, from discovery). A kText value is taken as it is
// unless it is a quoted TOML string; other values are parsed as TOML. Reports, by variable,
// values that do not parse and OTP_SIDECAR_* variables that name no key (except those the
// configuration names as a secret's *_env variable).
void ApplyEnvironment(const Environment& environment, const std::map<std::string, KeyKind>& keys,
                      toml::table& root, Problems& problems);

}  // namespace sidecar::config_internal
