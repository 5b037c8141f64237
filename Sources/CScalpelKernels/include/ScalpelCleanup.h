#ifndef SCALPEL_CLEANUP_H
#define SCALPEL_CLEANUP_H
#include <stddef.h>

/// The process-wide registry of what a run must remove when it is interrupted, and of the mapped input
/// ranges whose SIGBUS becomes a one-line error. Written in C so that the signal handlers only do
/// async-signal-safe work: they write one record to a pipe, and a dedicated cleanup thread does the rest.

/// Creates a temporary file from `template_path` (ending in XXXXXX, replaced in place) with mkstemp and
/// registers it, atomically with respect to the cleanup thread. Returns the open descriptor, or -1 with
/// errno set; `*slot` receives the registry slot (-1 when the registry is full: the file then is not
/// removed on interruption).
int scalpel_temp_create_file(char *template_path, int *slot);

/// Opens a nameless read-write file in the folder `folder`: O_TMPFILE where the file system has it,
/// else mkstemp on `template_path` (which must lie in `folder` and end in XXXXXX) followed by unlink,
/// both under the registry lock, so an interruption can never leave the name behind. Returns the
/// descriptor, or -1 with errno set.
int scalpel_temp_create_anonymous(const char *folder, char *template_path);

/// Same for a folder (mkdtemp). Returns 0, or -1 with errno set.
int scalpel_temp_create_folder(char *template_path, int *slot);

/// Renames the registered temporary `from` to `to` and forgets it, atomically with respect to the cleanup
/// thread (so an interruption sees either the temporary, removed, or the finished file). Returns 0, or -1
/// with errno set (the temporary stays registered).
int scalpel_temp_commit(int slot, const char *from, const char *to);

/// Forgets a temporary (after the caller removed it itself).
void scalpel_temp_forget(int slot);

/// Removes every registered temporary now (files unlinked, folders removed recursively). Returns how
/// many were removed.
int scalpel_temp_remove_all(void);

/// Registers a mapped input range; a SIGBUS inside it prints `message` (one line, newline included) to
/// standard error, removes the temporaries and exits with status 1. Returns a slot, or -1 when full.
int scalpel_mapping_register(const void *start, size_t length, const char *message);

/// Forgets a mapped range.
void scalpel_mapping_forget(int slot);

/// The slot of the registered range holding `address`, or -1.
int scalpel_mapping_slot(const void *address);

/// The message of the registered range holding `address`, or NULL.
const char *scalpel_mapping_message(const void *address);

/// Installs the SIGINT, SIGTERM, SIGHUP and SIGBUS handlers and starts the cleanup thread (once;
/// later calls do nothing). On SIGINT/SIGTERM/SIGHUP the temporaries are removed and the process exits
/// with 128 + the signal number (130, 143, 129).
void scalpel_install_signal_handlers(void);

#endif
