#pragma once

// Internal to config/: the [sms] section (providers, templates, file, twilio, webhook).

#include <toml++/toml.h>

#include "config/config.h"
#include "config/toml_reader.h"

namespace sidecar::config_internal {

void ReadSmsTable(const toml::table& table, Config& config, Problems& problems);

// Checks provider names, the settings each listed provider needs, and every template.
void CheckSmsValues(Config& config, Problems& problems);

}  // namespace sidecar::config_internal
