/*
 * queue/qid.h — queue IDs: 16 upper-case hex digits, the first 13 the
 * arrival time in microseconds, the last 3 a per-process sequence, so IDs
 * are unique within a process and sort by arrival (string order = time order).
 * Across restarts and clock steps: queue recovery reports every ID it finds
 * (qid_seen), and new IDs start above the highest; commits never rename
 * over an existing queue file (RENAME_NOREPLACE), so a collision that still
 * happens fails that commit instead of replacing a message.
 */
#ifndef HATO_QID_H
#define HATO_QID_H

#define QID_LEN 16

/* New ID into out (QID_LEN + 1 bytes).  Thread-safe, strictly increasing
 * within the process. */
void qid_new(char out[QID_LEN + 1]);
/* An ID found on disk: later qid_new() values are greater than it.  A
 * string that is not a valid ID (or one with a suffix: "ID.env") is read
 * up to its first QID_LEN hex digits, or ignored. */
void qid_seen(const char *id);
/* 1 if s is a well-formed ID (exact length, hex digits). */
int qid_valid(const char *s);
/* Arrival time in µs encoded in the ID. */
long long qid_time_us(const char *id);

#endif
