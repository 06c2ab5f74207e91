// `memgate kb ...`: the knowledge base's offline commands.
//
//   memgate kb build DIR -o FILE [--chunk-size N] [--threads N] [--level N]
//       indexes DIR into an artifact FILE (what KB_ARTIFACT_FILE loads), with a
//       progress bar when stderr is a terminal;
//   memgate kb info FILE       what an artifact holds;
//   memgate kb export FILE -o DB
//       writes the SQLite database inside an artifact (for the sqlite3 shell);
//   memgate kb search FILE QUERY [-k N] [--advanced]
//       runs one query against an artifact and prints the hits as JSON.
// Exit codes: 0 done, 1 the work failed, 2 bad usage.
#pragma once

namespace memgate::kb {

// argv[1] is "kb". Prints to stdout/stderr and returns the exit code.
int run_kb_cli(int argc, char** argv);

}  // namespace memgate::kb
