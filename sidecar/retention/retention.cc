#include "retention/retention.h"

#include <functional>

namespace sidecar {
namespace {

// Runs one deletion in its own transaction, so that it holds the write lock for one small
// batch only.
Result<int> DeleteIn(Store& store, const std::function<Result<int>(StoreTx&)>& deletion) {
  int deleted = 0;
  Status done = store.Transact([&](StoreTx& tx) -> Status {
    Result<int> count = deletion(tx);
    if (!count.ok()) return count.error();
    deleted = *count;
    return OkStatus();
  });
  if (!done.ok()) return done.error();
  return deleted;
}

}  // namespace

Retention::Retention(Store& store, const Clock& clock, RetentionSettings settings)
    : store_(store), clock_(clock), settings_(settings) {}

Result<RetentionBatch> Retention::DeleteBatch() {
  TimeMs now = clock_.Now();
  int limit = settings_.batch_size;

  Result<int> challenges = DeleteIn(store_, [&](StoreTx& tx) {
    return tx.DeleteEndedChallenges(now - settings_.challenges_ms, limit);
  });
  if (!challenges.ok()) return challenges.error().WithContext("retention of challenges");

  Result<int> audit = DeleteIn(
      store_, [&](StoreTx& tx) { return tx.DeleteAuditEvents(now - settings_.audit_ms, limit); });
  if (!audit.ok()) return audit.error().WithContext("retention of audit events");

  return RetentionBatch{*challenges, *audit, *challenges >= limit || *audit >= limit};
}

}  // namespace sidecar
