# Generates a C++ source holding every NNNN_name.sql file of a folder, in order, so that the
# binary carries its schema and never depends on files beside it at run time.
#
# Inputs: MIGRATIONS_DIR, OUTPUT, FUNCTION (the C++ function that returns them).

file(GLOB migration_files RELATIVE "${MIGRATIONS_DIR}" "${MIGRATIONS_DIR}/*.sql")
list(SORT migration_files)

set(body "")
set(expected 1)
foreach(name IN LISTS migration_files)
  if(NOT name MATCHES "^([0-9][0-9][0-9][0-9])_[a-z0-9_]+\\.sql$")
    message(FATAL_ERROR "migration ${name}: name it NNNN_description.sql")
  endif()
  math(EXPR version "${CMAKE_MATCH_1}")
  if(NOT version EQUAL expected)
    message(FATAL_ERROR "migration ${name}: expected number ${expected}; numbers must not skip")
  endif()
  math(EXPR expected "${expected} + 1")

  file(READ "${MIGRATIONS_DIR}/${name}" sql)
  string(APPEND body "    {${version}, \"${name}\", R\"otpsql(${sql})otpsql\"},\n")
endforeach()

set(content "// Generated from ${MIGRATIONS_DIR} by cmake/embed_migrations.cmake. Do not edit.\n")
string(APPEND content "#include \"store/migrations.h\"\n\n")
string(APPEND content "namespace sidecar {\n\n")
string(APPEND content "const std::vector<Migration>& ${FUNCTION}() {\n")
string(APPEND content "  static const std::vector<Migration> kMigrations = {\n${body}  };\n")
string(APPEND content "  return kMigrations;\n}\n\n}  // namespace sidecar\n")

# Only rewrite when the content changed, so an unchanged schema does not trigger rebuilds.
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" previous)
else()
  set(previous "")
endif()
if(NOT previous STREQUAL content)
  file(WRITE "${OUTPUT}" "${content}")
endif()
