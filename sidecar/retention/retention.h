#pragma once

// Retention: what the database keeps, and for how long.
//
// Sealed codes are erased the moment a challenge ends (see challenges/); what is left of an
// ended challenge (user, masked-able phone, status, times) and its deliveries is deleted
// once it has been ended for `challenges_ms`, and audit rows once they are `audit_ms` old.
// Deletion runs in small batches, one short transaction each, so a request never waits
// long behind it; SQLite reuses the freed pages, so under steady load the file stops
// growing instead of shrinking.

#include <cstdint>

#include "common/clock.h"
#include "common/result.h"
#include "store/store.h"

namespace sidecar {

struct RetentionSettings {
  std::int64_t challenges_ms = 7LL * 24 * 60 * 60 * 1000;
  std::int64_t audit_ms = 90LL * 24 * 60 * 60 * 1000;
  int batch_size = 500;  // rows per transaction
};

// What one call deleted.
struct RetentionBatch {
  int challenges = 0;
  int audit_events = 0;
  bool full = false;  // a kind filled its batch: more are probably waiting
};

class Retention {
 public:
  Retention(Store& store, const Clock& clock, RetentionSettings settings);

  // Deletes at most one batch of ended challenges (with their deliveries) and one batch of
  // audit events past their periods, each in its own transaction. Thread-safe.
  Result<RetentionBatch> DeleteBatch();

  const RetentionSettings& settings() const { return settings_; }

 private:
  Store& store_;
  const Clock& clock_;
  const RetentionSettings settings_;
};

}  // namespace sidecar
