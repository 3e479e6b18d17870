#pragma once

// What SIGHUP changes in a running sidecar: the log file is reopened, and the SMS templates
// ([sms] template, templates, webotp_domain and the top-level app_name) are read again from
// the configuration file and swapped into the delivery worker. Every other key is read
// once at start; a change to one of them is logged as needing a restart.

#include <string>
#include <vector>

#include "config/config.h"
#include "delivery/delivery_worker.h"
#include "delivery/message.h"

namespace sidecar {

// The message settings for `config`: its templates, app name and WebOTP domain, with the
// code lifetime `ttl_ms` (a new lifetime needs a restart, so the running one is passed).
MessageSettings MessageSettingsOf(const Config& config, std::int64_t ttl_ms);

// The keys (as written in the file, e.g. "listen", "code.ttl", "limits") whose values in
// `loaded` differ from `running` and that take effect only after a restart.
std::vector<std::string> KeysNeedingRestart(const Config& running, const Config& loaded);

// Reopens the log file of `running`, when it has one, then reads the configuration again
// the way `running` was read and, when it is valid, gives its templates to `worker`. An
// invalid configuration is logged as an error and the templates in use stay. Returns true
// when new templates were swapped in.
bool ReloadOnHangup(const Config& running, DeliveryWorker& worker);

}  // namespace sidecar
