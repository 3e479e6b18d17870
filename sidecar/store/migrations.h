#pragma once

// Schema migrations, embedded from migrations/NNNN_name.sql at build time. Version N is
// applied when PRAGMA user_version < N, each in its own transaction together with the
// user_version update, so a crash mid-way leaves the previous version intact.

#include <string>
#include <vector>

namespace sidecar {

struct Migration {
  int version;
  const char* name;
  const char* sql;
};

// Sorted by version, starting at 1, without gaps: SQLite's (migrations/*.sql).
const std::vector<Migration>& EmbeddedMigrations();
// The same for PostgreSQL (migrations/postgresql/*.sql), whose versions are recorded in the
// table otp_sidecar_schema instead.
const std::vector<Migration>& EmbeddedPostgresMigrations();

}  // namespace sidecar
