/* fts5_baseline: SQLite FTS5 at library level, the way its documentation
 * shows, as the yardstick bench/kb/run holds memgate's search against.
 *
 * One thread, one connection over the same database image memgate serves
 * (read into memory and deserialized read-only, as memgate does), memgate's
 * own table and its stored ranking (bm25 with weights 10, 4, 1 as the
 * table's `rank`). For each query, one prepared statement:
 *
 *   SELECT doc, heading, snippet(chunks, 2, '<mark>', '</mark>', '…', 24), rank
 *   FROM chunks WHERE chunks MATCH ?1 ORDER BY rank LIMIT ?2
 *
 * every row stepped and every column read (so each snippet is made).
 *
 * Usage: fts5_baseline DB QUERIES PASSES K OUT
 *   DB       an SQLite file (`memgate kb export`)
 *   QUERIES  one FTS5 MATCH expression a line (already quoted)
 *   PASSES   timed passes over all queries, after one untimed warm-up pass
 *   OUT      written: "t <pass> <query> <microseconds>" per timed query, and
 *            "r <query> <docs rowid,...>" (the warm-up pass's rows, in rank
 *            order) for the overlap with memgate's answers, and "s <query>
 *            <docs rowid> <snippet>" for each of those rows (newlines and tabs
 *            as spaces)
 * Prints one line: queries, seconds, queries per second (timed passes only).
 * Bounded: at most 100000 queries and 1000 passes. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_QUERIES 100000

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void die(const char* what, sqlite3* db) {
  fprintf(stderr, "fts5_baseline: %s: %s\n", what, db ? sqlite3_errmsg(db) : "");
  exit(1);
}

int main(int argc, char** argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: fts5_baseline DB QUERIES PASSES K OUT\n");
    return 2;
  }
  int passes = atoi(argv[3]), k = atoi(argv[4]);
  if (passes < 1 || passes > 1000 || k < 1 || k > 50) {
    fprintf(stderr, "fts5_baseline: PASSES 1..1000, K 1..50\n");
    return 2;
  }

  /* The image, in memory, as memgate holds it. */
  FILE* f = fopen(argv[1], "rb");
  if (!f) die("cannot open the database file", NULL);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char* image = sqlite3_malloc64((sqlite3_uint64)size);
  if (!image || fread(image, 1, (size_t)size, f) != (size_t)size) die("cannot read the database file", NULL);
  fclose(f);
  sqlite3* db = NULL;
  if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) die("open", db);
  if (sqlite3_deserialize(db, "main", image, size, size, SQLITE_DESERIALIZE_READONLY) != SQLITE_OK)
    die("deserialize", db);
  char pragma[96];
  snprintf(pragma, sizeof pragma, "PRAGMA query_only=1; PRAGMA mmap_size=%ld;", size);
  if (sqlite3_exec(db, pragma, NULL, NULL, NULL) != SQLITE_OK) die("pragma", db);

  /* The queries. */
  FILE* qf = fopen(argv[2], "r");
  if (!qf) die("cannot open the queries", NULL);
  char** queries = malloc(sizeof(char*) * MAX_QUERIES);
  int n = 0;
  char line[4096];
  while (n < MAX_QUERIES && fgets(line, sizeof line, qf)) {
    line[strcspn(line, "\r\n")] = 0;
    if (line[0]) queries[n++] = strdup(line);
  }
  fclose(qf);

  sqlite3_stmt* q = NULL;
  const char* sql =
      "SELECT doc, heading, snippet(chunks, 2, '<mark>', '</mark>', '…', 24), rank "
      "FROM chunks WHERE chunks MATCH ?1 ORDER BY rank LIMIT ?2";
  if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) die("prepare", db);

  FILE* out = fopen(argv[5], "w");
  if (!out) die("cannot write OUT", NULL);
  char* snippets[50];
  sqlite3_int64 snippet_docs[50];
  double timed_us = 0;
  long timed = 0;
  size_t bytes = 0; /* what was read, so nothing is optimized away */
  for (int pass = 0; pass <= passes; ++pass) {
    for (int i = 0; i < n; ++i) {
      double t0 = now_us();
      sqlite3_bind_text(q, 1, queries[i], -1, SQLITE_STATIC);
      sqlite3_bind_int(q, 2, k);
      int rc;
      if (pass == 0) fprintf(out, "r %d ", i);
      int row = 0;
      while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        sqlite3_int64 doc = sqlite3_column_int64(q, 0);
        bytes += (size_t)sqlite3_column_bytes(q, 1);
        bytes += (size_t)sqlite3_column_bytes(q, 2);
        (void)sqlite3_column_double(q, 3);
        if (pass == 0) {
          fprintf(out, "%lld,", (long long)doc);
          /* the snippet, kept for after the timed loop (one line: newlines and tabs as spaces) */
          if (row < 50) {
            const char* t = (const char*)sqlite3_column_text(q, 2);
            snippets[row] = strdup(t ? t : "");
            for (char* c = snippets[row]; *c; ++c)
              if (*c == '\n' || *c == '\t' || *c == '\r') *c = ' ';
            snippet_docs[row++] = doc;
          }
        }
      }
      if (rc != SQLITE_DONE) die(queries[i], db);
      sqlite3_reset(q);
      double us = now_us() - t0;
      if (pass == 0) {
        fprintf(out, "\n");
        for (int r = 0; r < row; ++r) {
          fprintf(out, "s %d %lld %s\n", i, (long long)snippet_docs[r], snippets[r]);
          free(snippets[r]);
        }
      } else {
        fprintf(out, "t %d %d %.1f\n", pass, i, us);
        timed_us += us;
        ++timed;
      }
    }
  }
  fclose(out);
  printf("%ld queries in %.3f s: %.1f queries/s (%zu bytes of headings and snippets)\n", timed, timed_us / 1e6,
         timed / (timed_us / 1e6), bytes);
  sqlite3_finalize(q);
  sqlite3_close(db);
  return 0;
}
