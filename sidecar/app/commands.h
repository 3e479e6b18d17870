#pragma once

// The sidecar's commands, wired from the parts. Each returns the process exit status:
// 0 on success, 1 when it could not do its work (the reason is logged), 2 on usage errors.

#include "config/config.h"

namespace sidecar {

// Serves the API until SIGTERM or SIGINT, then stops accepting, lets in-flight requests
// finish and the send in progress finish within a grace, checkpoints the WAL and returns 0,
// all within 3 s (a send that outlives the grace ends the process at once, still with 0;
// see delivery_worker.h). SIGHUP reopens the log file and reloads the templates (reload.h).
int RunServe(const Config& config);

// Checks what serve would check before listening (the key file, provider secrets) without
// serving, and warns about templates longer than one SMS segment. Returns 0 or 2.
int RunCheckConfig(const Config& config);

// Creates or upgrades the database and prints its schema version.
int RunMigrate(const Config& config);

// Prints the version and the newest schema version this binary carries.
int RunVersion();

}  // namespace sidecar
