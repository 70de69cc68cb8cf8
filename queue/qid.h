/*
 * queue/qid.h — queue IDs: 16 upper-case hex digits, the first 13 the
 * arrival time in microseconds, the last 3 a per-process sequence, so IDs
 * are unique within a process and sort by arrival (string order = time order).
 * Uniqueness across processes is enforced by O_EXCL when the file is created.
 */
#ifndef HATO_QID_H
#define HATO_QID_H

#define QID_LEN 16

/* New ID into out (QID_LEN + 1 bytes).  Thread-safe, strictly increasing
 * within the process. */
void qid_new(char out[QID_LEN + 1]);
/* 1 if s is a well-formed ID (exact length, hex digits). */
int qid_valid(const char *s);
/* Arrival time in µs encoded in the ID. */
long long qid_time_us(const char *id);

#endif
