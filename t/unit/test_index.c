/*
 * t/unit/test_index.c — store/index.c: append/load/sync, UIDs stable across
 * reopen, flag changes (ours and others' renames), expunge, delivery appends,
 * concurrent writers (threads and forked processes) never duplicating a UID,
 * a truncated or corrupt index (torn tail cut; corruption → new UIDVALIDITY),
 * kill -9 of a writer at random points, compaction, the reader fed one
 * byte at a time against one block, and the exported encoders (the fuzzer's).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/fsutil.h"
#include "store/index.h"
#include "store/maildir.h"
#include "t/unit/tap.h"

#define NTHREADS    4
#define PER_WRITER  40
#define NPROCS      3
#define KILL_ROUNDS 12
#define FOLDER_MAX  512

static char root[256];
static unsigned seq;

static void mkfolder(char *out, size_t len, const char *name)
{
    if (snprintf(out, len, "%s/%s", root, name) >= (int)len || maildir_create(out) != 0) {
        perror(name);
        exit(2);
    }
}

/* Drop a message file into SUB/ the way another program would. */
static void put_msg(const char *folder, const char *sub, const char *name, const char *text)
{
    char path[PATH_MAX];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s/%s", folder, sub, name);
    f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

/* Deliver through the store: tmp/ file, then store_index_deliver. */
static int deliver(const char *folder, const char *tag)
{
    char name[128], tmp[PATH_MAX];
    struct store_newmsg m = { 0 };
    const char *text = "Subject: x\r\n\r\nbody\r\n";

    snprintf(name, sizeof(name), "%ld.M%uP%ld.%s,S=%zu", (long)time(NULL),
             __atomic_add_fetch(&seq, 1, __ATOMIC_SEQ_CST), (long)getpid(), tag, strlen(text));
    snprintf(tmp, sizeof(tmp), "%s/tmp/%s", folder, name);
    put_msg(folder, "tmp", name, text);
    m.size = (int64_t)strlen(text);
    m.hdr_end = 14;
    m.date = time(NULL);
    return store_index_deliver(folder, tmp, name, &m, 0);
}

/* Every UID unique and increasing, every name unique, all < uidnext. */
static int invariants(const struct store_index *ix)
{
    for (size_t i = 0; i < ix->n; i++) {
        if (ix->msgs[i].uid == 0 || ix->msgs[i].uid >= ix->uidnext)
            return 0;
        if (i > 0 && ix->msgs[i].uid <= ix->msgs[i - 1].uid)
            return 0;
        for (size_t k = i + 1; k < ix->n; k++)
            if (strcmp(ix->msgs[i].name, ix->msgs[k].name) == 0)
                return 0;
    }
    return 1;
}

static size_t count_files(const char *folder)
{
    static const char *subs[] = { "new", "cur" };
    size_t n = 0;

    for (int i = 0; i < 2; i++) {
        char p[PATH_MAX];
        struct dirent *de;
        DIR *d;
        snprintf(p, sizeof(p), "%s/%s", folder, subs[i]);
        d = opendir(p);
        if (d == NULL)
            continue;
        while ((de = readdir(d)) != NULL)
            n += de->d_name[0] != '.';
        closedir(d);
    }
    return n;
}

static char *index_path(const char *folder)
{
    static char p[PATH_MAX];

    snprintf(p, sizeof(p), "%s/%s", folder, STORE_INDEX_FILE);
    return p;
}

static const struct store_msg *by_name(const struct store_index *ix, const char *name)
{
    for (size_t i = 0; i < ix->n; i++)
        if (strcmp(ix->msgs[i].name, name) == 0)
            return &ix->msgs[i];
    return NULL;
}

/* ---- basic: sync, reopen, flags, expunge ------------------------------- */

static void test_basic(void)
{
    char f[FOLDER_MAX];
    struct store_index *ix, *ix2;

    mkfolder(f, sizeof(f), "basic");
    put_msg(f, "new", "1000.A.host,S=20", "Subject: a\n\nbody-a\n");
    put_msg(f, "cur", "1001.B.host:2,S", "Subject: b\r\nX: y\r\n\r\nbody\r\n");
    ok(store_index_open(f, &ix) == 0, "open a folder without an index");
    is_int(ix->n, 2, "both files indexed");
    ok(ix->uidvalidity != 0, "a UIDVALIDITY");
    is_int(ix->uidnext, 3, "UIDNEXT 3");
    const struct store_msg *a = by_name(ix, "1000.A.host,S=20");
    const struct store_msg *b = by_name(ix, "1001.B.host");
    ok(a && b, "keyed by base name");
    if (!a || !b)
        return;
    is_int(a->size, 20, "size from ,S=");
    is_int(a->hdr_end, 12, "header end (LF)");
    is_int(b->hdr_end, 20, "header end (CRLF)");
    is_int(b->flags, STORE_F_SEEN, "flags from :2,S");
    ok(b->in_cur && !a->in_cur, "new/ vs cur/");
    uint32_t ua = a->uid, ub = b->uid, v = ix->uidvalidity;

    ok(store_index_open(f, &ix2) == 0, "reopen");
    is_int(ix2->uidvalidity, v, "same UIDVALIDITY after reopen");
    is_int(by_name(ix2, "1000.A.host,S=20")->uid, ua, "same UID a");
    is_int(by_name(ix2, "1001.B.host")->uid, ub, "same UID b");

    /* ours: a flag change renames the file into cur/ */
    uint64_t ms = ix->highestmodseq;
    is_int(store_index_set_flags(ix, ua, STORE_F_SEEN | STORE_F_FLAGGED, 1), 0, "set flags");
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof(p), "%s/cur/1000.A.host,S=20:2,FSa", f);
    ok(stat(p, &st) == 0, "file renamed to cur/...:2,FSa");
    ok(ix->highestmodseq > ms, "HIGHESTMODSEQ grew");
    ok(store_index_find(ix, ua)->modseq == ix->highestmodseq, "message MODSEQ is the highest");
    ok(store_index_refresh(ix2) == 0, "the other handle refreshes");
    is_int(store_index_find(ix2, ua)->flags, STORE_F_SEEN | STORE_F_FLAGGED, "and sees the flags");
    is_int(store_index_find(ix2, ua)->keywords, 1, "and the keyword");

    /* others': mutt renames b to :2,RS */
    char from[PATH_MAX], to[PATH_MAX];
    snprintf(from, sizeof(from), "%s/cur/1001.B.host:2,S", f);
    snprintf(to, sizeof(to), "%s/cur/1001.B.host:2,RS", f);
    ok(rename(from, to) == 0, "rename by another program");
    ok(store_index_sync(ix2) == 0, "sync");
    is_int(store_index_find(ix2, ub)->flags, STORE_F_SEEN | STORE_F_REPLIED, "flags picked up");
    is_int(store_index_find(ix2, ub)->uid, ub, "UID kept");

    /* a new file and a removal by others */
    put_msg(f, "new", "1002.C.host", "Subject: c\n\nc\n");
    ok(unlink(to) == 0, "another program deletes b");
    ok(store_index_sync(ix) == 0, "sync");
    ok(store_index_find(ix, ub) == NULL, "b expunged");
    const struct store_msg *c = by_name(ix, "1002.C.host");
    ok(c && c->uid == 3, "c gets UID 3");
    /* expunge the highest UID: it is never given again */
    is_int(store_index_expunge(ix, 3), 0, "expunge UID 3");
    is_int(store_index_expunge(ix, 3), 1, "expunge again: gone");
    ok(deliver(f, "d") == 0, "deliver d");
    ok(store_index_refresh(ix) == 0, "refresh");
    ok(ix->n == 2 && ix->msgs[1].uid == 4, "d gets UID 4, not 3");
    ok(invariants(ix), "invariants");
    store_index_close(ix);
    store_index_close(ix2);
    ok(store_index_open(f, &ix) == 0 && ix->uidnext == 5 && ix->uidvalidity == v,
       "reopen: UIDNEXT 5, same UIDVALIDITY");
    store_index_close(ix);
}

/* ---- delivery: UIDs 1..N, the tail-only path --------------------------- */

static void test_deliver(void)
{
    char f[FOLDER_MAX];
    struct store_index *ix;
    int good = 1;

    mkfolder(f, sizeof(f), "deliver");
    for (int i = 0; i < 50; i++)
        good &= deliver(f, "x") == 0;
    ok(good, "50 deliveries");
    ok(store_index_open(f, &ix) == 0, "open");
    is_int(ix->n, 50, "50 messages");
    int seqok = 1;
    for (size_t i = 0; i < ix->n; i++)
        seqok &= ix->msgs[i].uid == i + 1 && ix->msgs[i].size == 20 && ix->msgs[i].hdr_end == 14;
    ok(seqok, "UIDs 1..50 with their facts");
    uint32_t rebuilt = ix->rebuilt;
    ok(store_index_sync(ix) == 0 && ix->n == 50 && ix->rebuilt == rebuilt,
       "sync finds nothing new");
    store_index_close(ix);
}

/* ---- compaction -------------------------------------------------------- */

static void test_compact(void)
{
    char f[FOLDER_MAX];
    struct store_index *ix, *other;
    struct stat st0, st1;

    mkfolder(f, sizeof(f), "compact");
    for (int i = 0; i < 10; i++)
        (void)deliver(f, "c");
    ok(store_index_open(f, &ix) == 0 && store_index_open(f, &other) == 0, "open twice");
    ok(stat(index_path(f), &st0) == 0, "stat");
    int good = 1;
    for (int i = 0; i < 1200 && good; i++)
        good = store_index_set_flags(ix, (uint32_t)(i % 10) + 1,
                                     i & 1 ? STORE_F_SEEN : STORE_F_FLAGGED, 0) == 0;
    ok(good, "1200 flag changes");
    ok(stat(index_path(f), &st1) == 0 && st1.st_ino != st0.st_ino, "the log was compacted");
    ok(st1.st_size < 64 * 1024, "and is small (%lld)", (long long)st1.st_size);
    ok(store_index_refresh(other) == 0, "an old reader reloads");
    is_int(other->n, 10, "10 messages");
    is_int(other->highestmodseq, ix->highestmodseq, "same HIGHESTMODSEQ");
    is_int(store_index_find(other, 10)->flags, STORE_F_SEEN, "latest flags");
    ok(invariants(other), "invariants");
    store_index_close(ix);
    store_index_close(other);
}

/* ---- lost, truncated, corrupt ----------------------------------------- */

static void test_damage(void)
{
    char f[FOLDER_MAX];
    struct store_index *ix;
    struct stat st;

    mkfolder(f, sizeof(f), "damage");
    for (int i = 0; i < 5; i++)
        (void)deliver(f, "d");
    ok(store_index_open(f, &ix) == 0, "open");
    uint32_t v = ix->uidvalidity;
    store_index_close(ix);

    /* a torn last record (kill -9 in the middle of an append) */
    ok(stat(index_path(f), &st) == 0 && truncate(index_path(f), st.st_size - 7) == 0,
       "tear the last record");
    ok(store_index_open(f, &ix) == 0 && store_index_sync(ix) == 0, "open, sync");
    is_int(ix->uidvalidity, v, "torn tail: UIDVALIDITY kept");
    is_int(ix->n, 5, "the torn message re-found by the sync");
    is_int(ix->n == 5 ? ix->msgs[4].uid : 0, 5, "with the UID the torn record never gave out");
    ok(invariants(ix), "invariants");
    store_index_close(ix);
    ok(store_index_open(f, &ix) == 0 && ix->uidvalidity == v && ix->n == 5 && ix->rebuilt == 0,
       "reopened after the cut: the same index, no rebuild");
    store_index_close(ix);

    int fd;

    /* a hole: an append lost while a later one reached the disk (power
     * loss with unflushed writes); the records after it still count */
    struct store_index *h0;
    ok(store_index_open(f, &h0) == 0, "open");
    uint32_t lost_uid = h0->msgs[2].uid, after_uid = h0->msgs[3].uid;
    char *lost_name = strdup(h0->msgs[2].name);
    store_index_close(h0);
    (void)deliver(f, "h");                  /* one more record after the hole */
    char *buf = NULL;
    size_t blen = 0;
    ok(fs_read_file(index_path(f), 1 << 20, &buf, &blen) == 0, "read");
    size_t at = 32, k = 0;                  /* find the third record */
    while (k < 2 && at + 4 <= blen) {
        at += (size_t)buf[at] | (size_t)(unsigned char)buf[at + 1] << 8;
        k++;
    }
    size_t rl = (size_t)(unsigned char)buf[at] | (size_t)(unsigned char)buf[at + 1] << 8;
    memset(buf + at, 0, rl);
    fd = open(index_path(f), O_WRONLY | O_TRUNC);
    ok(fd >= 0 && write(fd, buf, blen) == (ssize_t)blen && close(fd) == 0, "zero one record");
    struct store_index *one = store_index_new_empty(), *tr = store_index_new_empty();
    size_t used = store_index_feed(one, (unsigned char *)buf, blen), start = 0;
    for (size_t end = 1; end <= blen; end++)
        start += store_index_feed(tr, (unsigned char *)buf + start, end - start);
    ok(used == blen && start == blen && one->n == 5 && tr->n == 5, "hole skipped, trickle too");
    store_index_close(one);
    store_index_close(tr);
    free(buf);
    ok(store_index_open(f, &ix) == 0 && store_index_sync(ix) == 0, "open, sync");
    is_int(ix->uidvalidity, v, "hole: UIDVALIDITY kept");
    is_int(ix->rebuilt, 0, "hole: no rebuild");
    is_int(ix->n, 6, "hole: every message indexed");
    ok(store_index_find(ix, after_uid) != NULL, "the records after the hole keep their UIDs");
    const struct store_msg *again = by_name(ix, lost_name);
    ok(again && again->uid >= ix->uidnext - 1 && again->uid != lost_uid,
       "the message whose record was lost gets a new UID, never a used one");
    ok(invariants(ix), "invariants");
    free(lost_name);
    store_index_close(ix);

    /* a flipped octet in the middle: UIDs after it cannot be proven */
    fd = open(index_path(f), O_RDWR);
    unsigned char c;
    ok(fd >= 0 && pread(fd, &c, 1, 100) == 1, "read an octet");
    c ^= 0x40;
    ok(pwrite(fd, &c, 1, 100) == 1 && close(fd) == 0, "corrupt it");
    ok(store_index_open(f, &ix) == 0, "open a corrupt index");
    ok(ix->uidvalidity > v, "new UIDVALIDITY (%u > %u)", ix->uidvalidity, v);
    is_int(ix->n, 6, "every message indexed again");
    ok(invariants(ix), "invariants");
    v = ix->uidvalidity;
    store_index_close(ix);

    /* lost */
    ok(unlink(index_path(f)) == 0, "lose the index");
    ok(store_index_open(f, &ix) == 0, "open");
    ok(ix->uidvalidity > v && ix->n == 6, "rebuilt with a greater UIDVALIDITY");
    v = ix->uidvalidity;
    store_index_close(ix);

    /* garbage header */
    fd = open(index_path(f), O_WRONLY | O_TRUNC);
    ok(fd >= 0 && write(fd, "garbage garbage garbage garbage!!", 33) == 33 && close(fd) == 0,
       "overwrite with garbage");
    ok(store_index_open(f, &ix) == 0 && ix->n == 6 && ix->rebuilt == 1, "rebuilt");
    ok(ix->uidvalidity > v, "with a greater UIDVALIDITY");
    store_index_close(ix);
}

/* ---- concurrent writers: threads --------------------------------------- */

static char conc_folder[FOLDER_MAX];

static void *writer_thread(void *arg)
{
    struct store_index *ix;
    long id = (long)arg;
    char tag[16];

    snprintf(tag, sizeof(tag), "t%ld", id);
    if (store_index_open(conc_folder, &ix) != 0)
        return (void *)1;
    for (int i = 0; i < PER_WRITER; i++) {
        if (id % 2 == 0) {
            if (deliver(conc_folder, tag) != 0)
                return (void *)1;
        } else {
            char name[64];
            snprintf(name, sizeof(name), "%ld.%d.ext", id, i);
            put_msg(conc_folder, "new", name, "Subject: e\n\ne\n");
            if (store_index_sync(ix) != 0)
                return (void *)1;
            if (ix->n > 0)
                (void)store_index_set_flags(ix, ix->msgs[ix->n / 2].uid, STORE_F_SEEN, 0);
        }
    }
    store_index_close(ix);
    return NULL;
}

static void check_all(const char *folder, size_t want, const char *what)
{
    struct store_index *ix;

    ok(store_index_open(folder, &ix) == 0, "%s: open", what);
    ok(store_index_sync(ix) == 0, "%s: sync", what);
    is_int(ix->n, want, what);
    ok(invariants(ix), "%s: no UID twice, no name twice", what);
    is_int(ix->rebuilt, 0, "no rebuild");
    is_int(ix->uidnext, want + 1, "UIDs 1..N without gaps");
    store_index_close(ix);
}

/* A reader session beside the writers: it refreshes (and now and then
 * reopens) its view until *stop, and every view must keep the invariants
 * and give each name the UID it had in every earlier view.  The names
 * seen are remembered (at most SEEN_MAX). */
#define SEEN_MAX (NTHREADS * PER_WRITER + 64)

struct reader {
    volatile int *stop;
    size_t views, seen_n;
    int bad;
    struct { char *name; uint32_t uid; } seen[SEEN_MAX];
};

static void reader_check(struct reader *rd, const struct store_index *ix)
{
    rd->views++;
    if (!invariants(ix))
        rd->bad |= 1;
    for (size_t i = 0; i < ix->n; i++) {
        size_t k = 0;
        while (k < rd->seen_n && strcmp(rd->seen[k].name, ix->msgs[i].name) != 0)
            k++;
        if (k < rd->seen_n) {
            if (rd->seen[k].uid != ix->msgs[i].uid)
                rd->bad |= 2;            /* a message changed UID */
            continue;
        }
        for (size_t j = 0; j < rd->seen_n; j++)
            if (rd->seen[j].uid == ix->msgs[i].uid)
                rd->bad |= 4;            /* a UID given to a second message */
        if (rd->seen_n < SEEN_MAX) {
            rd->seen[rd->seen_n].name = strdup(ix->msgs[i].name);
            rd->seen[rd->seen_n++].uid = ix->msgs[i].uid;
        }
    }
}

static void *reader_thread(void *arg)
{
    struct reader *rd = arg;
    struct store_index *ix = NULL;

    for (int round = 0; !*rd->stop || round == 0; round++) {
        if (ix == NULL && store_index_open(conc_folder, &ix) != 0) {
            rd->bad |= 8;
            break;
        }
        if (store_index_refresh(ix) != 0)
            rd->bad |= 8;
        reader_check(rd, ix);
        if (round % 7 == 6) {
            store_index_close(ix);       /* a new session */
            ix = NULL;
        }
    }
    store_index_close(ix);
    for (size_t k = 0; k < rd->seen_n; k++)
        free(rd->seen[k].name);
    return NULL;
}

static void test_threads(void)
{
    pthread_t t[NTHREADS], rt;
    static struct reader rd;
    volatile int stop = 0;
    int good = 1;

    mkfolder(conc_folder, sizeof(conc_folder), "threads");
    rd.stop = &stop;
    good &= pthread_create(&rt, NULL, reader_thread, &rd) == 0;
    for (long i = 0; i < NTHREADS; i++)
        good &= pthread_create(&t[i], NULL, writer_thread, (void *)i) == 0;
    for (int i = 0; i < NTHREADS; i++) {
        void *r;
        good &= pthread_join(t[i], &r) == 0 && r == NULL;
    }
    stop = 1;
    good &= pthread_join(rt, NULL) == 0;
    ok(good, "threads ran");
    ok(rd.views > 1, "the reader saw %zu views while they wrote", rd.views);
    is_int(rd.bad, 0, "reader: every view whole, no UID changed or given twice");
    check_all(conc_folder, NTHREADS * PER_WRITER, "threads: every message once");
}

/* ---- concurrent writers: processes ------------------------------------- */

static void test_procs(void)
{
    pid_t pid[NPROCS];
    int good = 1;

    mkfolder(conc_folder, sizeof(conc_folder), "procs");
    /* a reader process beside them: it reads until its parent's pipe closes */
    int pfd[2];
    if (pipe(pfd) != 0)
        exit(2);
    pid_t rpid = fork();
    if (rpid == 0) {
        static struct reader rd;
        static volatile int stop;
        close(pfd[1]);
        if (fcntl(pfd[0], F_SETFL, O_NONBLOCK) != 0)
            _exit(3);
        rd.stop = &stop;
        pthread_t rt;
        if (pthread_create(&rt, NULL, reader_thread, &rd) != 0)
            _exit(3);
        char c;
        while (read(pfd[0], &c, 1) != 0)
            usleep(1000);
        stop = 1;
        pthread_join(rt, NULL);
        _exit(rd.bad != 0 ? 4 : rd.views > 1 ? 0 : 5);
    }
    close(pfd[0]);
    for (long i = 0; i < NPROCS; i++) {
        pid[i] = fork();
        if (pid[i] == 0)
            _exit(writer_thread((void *)i) == NULL ? 0 : 1);
    }
    for (int i = 0; i < NPROCS; i++) {
        int st;
        good &= waitpid(pid[i], &st, 0) == pid[i] && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    close(pfd[1]);
    int rst;
    ok(waitpid(rpid, &rst, 0) == rpid && WIFEXITED(rst) && WEXITSTATUS(rst) == 0,
       "reader process: every view whole, no UID changed or given twice (exit %d)",
       WIFEXITED(rst) ? WEXITSTATUS(rst) : -1);
    ok(good, "processes ran");
    check_all(conc_folder, NPROCS * PER_WRITER, "processes: every message once");
}

/* ---- kill -9 at random points ------------------------------------------ */

/* The child delivers, syncs and flags forever; the parent kills it after a
 * random delay, then checks the invariants and that no message that had a
 * UID before the kill has another one after it (unless UIDVALIDITY moved). */
static void test_kill9(void)
{
    char f[FOLDER_MAX];
    int good = 1, uidok = 1;
    uint32_t v0 = 0;

    mkfolder(f, sizeof(f), "kill9");
    srand((unsigned)getpid());
    for (int round = 0; round < KILL_ROUNDS; round++) {
        struct store_index *before = NULL, *after = NULL;
        if (store_index_open(f, &before) != 0) {
            good = 0;
            break;
        }
        if (round == 0)
            v0 = before->uidvalidity;
        pid_t pid = fork();
        if (pid == 0) {
            struct store_index *ix;
            if (store_index_open(f, &ix) != 0)
                _exit(1);
            for (int i = 0;; i++) {
                char name[64];
                (void)deliver(f, "k");
                snprintf(name, sizeof(name), "%d.%d.ext", round, i);
                put_msg(f, "new", name, "Subject: k\n\nk\n");
                (void)store_index_sync(ix);
                if (ix->n > 0)
                    (void)store_index_set_flags(ix, ix->msgs[(size_t)i % ix->n].uid,
                                                (uint32_t)i & 0x1f, 0);
                if (ix->n > 3 && i % 3 == 0)
                    (void)store_index_expunge(ix, ix->msgs[0].uid);
            }
        }
        usleep((useconds_t)(2000 + rand() % 30000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        if (store_index_open(f, &after) != 0 || store_index_sync(after) != 0) {
            good = 0;
            store_index_close(before);
            break;
        }
        good &= invariants(after);
        good &= after->n == count_files(f);
        good &= after->uidvalidity == v0;
        for (size_t i = 0; i < before->n && after->uidvalidity == before->uidvalidity; i++) {
            const struct store_msg *m = by_name(after, before->msgs[i].name);
            if (m != NULL && m->uid != before->msgs[i].uid)
                uidok = 0;
        }
        good &= after->uidnext >= before->uidnext;
        store_index_close(before);
        store_index_close(after);
    }
    ok(good, "kill -9 x%d: invariants, index = Maildir, UIDVALIDITY kept", KILL_ROUNDS);
    ok(uidok, "kill -9: no message changed UID");
}

/* kill -9 while flag changes keep compacting the log (a snapshot to
 * hato.index.tmp, fsync, rename, fsync of the folder every ~1,600 records
 * here): every UID kept, no rebuild, no message lost or doubled. */
#define COMPACT_MSGS   300
#define COMPACT_ROUNDS 6       /* at least; more (to 40) until two compactions ran */

static void test_kill9_compact(void)
{
    char f[FOLDER_MAX];
    struct store_index *ix;
    struct stat st;
    int good = 1, uidok = 1, replaced = 0;

    mkfolder(f, sizeof(f), "kill9c");
    for (int i = 0; i < COMPACT_MSGS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%d.c.ext", i);
        put_msg(f, "new", name, "Subject: c\n\nc\n");
    }
    ok(store_index_open(f, &ix) == 0 && ix->n == COMPACT_MSGS, "%d messages indexed", COMPACT_MSGS);
    uint32_t v0 = ix ? ix->uidvalidity : 0;
    store_index_close(ix);
    ino_t ino = stat(index_path(f), &st) == 0 ? st.st_ino : 0;
    int round = 0;
    for (; (round < COMPACT_ROUNDS || replaced < 2) && round < 40 && good; round++) {
        struct store_index *before = NULL, *after = NULL;
        if (store_index_open(f, &before) != 0)
            break;
        pid_t pid = fork();
        if (pid == 0) {
            if (store_index_open(f, &ix) != 0)
                _exit(1);
            for (uint32_t i = 0;; i++)
                (void)store_index_set_flags(ix, ix->msgs[i % ix->n].uid,
                                            i & 1 ? STORE_F_SEEN : STORE_F_FLAGGED, 0);
        }
        usleep((useconds_t)(50000 + rand() % 400000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        if (store_index_open(f, &after) != 0 || store_index_sync(after) != 0) {
            good = 0;
        } else {
            good &= invariants(after) && after->n == COMPACT_MSGS && after->uidvalidity == v0
                    && after->rebuilt == 0 && after->uidnext == before->uidnext;
            for (size_t i = 0; i < before->n; i++) {
                const struct store_msg *m = by_name(after, before->msgs[i].name);
                uidok &= m != NULL && m->uid == before->msgs[i].uid;
            }
        }
        if (stat(index_path(f), &st) == 0 && st.st_ino != ino) {
            replaced++;
            ino = st.st_ino;
        }
        store_index_close(before);
        store_index_close(after);
    }
    if (replaced > 0)
        ok(1, "compactions ran in %d of %d rounds", replaced, round);
    else
        ok(1, "# SKIP no compaction in %d rounds (a slow disk): kills were mid-log only", round);
    ok(good, "kill -9 during compactions: invariants, every message once, no rebuild");
    ok(uidok, "kill -9 during compactions: every UID kept");
}

/* ---- the reader: trickle vs one block ---------------------------------- */

static int same_state(const struct store_index *a, const struct store_index *b)
{
    if (a->uidvalidity != b->uidvalidity || a->uidnext != b->uidnext
        || a->highestmodseq != b->highestmodseq || a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->msgs[i].uid != b->msgs[i].uid || a->msgs[i].flags != b->msgs[i].flags
            || a->msgs[i].modseq != b->msgs[i].modseq || strcmp(a->msgs[i].name, b->msgs[i].name))
            return 0;
    return 1;
}

static void test_trickle(void)
{
    char f[FOLDER_MAX];
    char *buf = NULL;
    size_t len = 0;
    struct store_index *ix;

    mkfolder(f, sizeof(f), "trickle");
    for (int i = 0; i < 20; i++)
        (void)deliver(f, "r");
    ok(store_index_open(f, &ix) == 0, "open");
    for (int i = 0; i < 10; i++)
        (void)store_index_set_flags(ix, (uint32_t)i + 1, STORE_F_SEEN, 2);
    (void)store_index_expunge(ix, 3);
    ok(fs_read_file(index_path(f), 1 << 20, &buf, &len) == 0, "read the file");

    struct store_index *one = store_index_new_empty(), *tr = store_index_new_empty();
    is_int(store_index_feed(one, (unsigned char *)buf, len), len, "one block: all applied");
    ok(same_state(one, ix), "one block = the writer's state");
    /* byte by byte: a growing window, as a reader meets a file being written */
    size_t start = 0;
    for (size_t end = 1; end <= len; end++)
        start += store_index_feed(tr, (unsigned char *)buf + start, end - start);
    is_int(start, len, "trickle: all applied");
    ok(same_state(one, tr), "trickle = one block");
    ok(tr->bad == 0, "no error on partial records");

    /* every truncation of the file parses to a prefix state, never an error */
    int prefixes_ok = 1;
    for (size_t cut = 0; cut < len; cut += 7) {
        struct store_index *p = store_index_new_empty();
        (void)store_index_feed(p, (unsigned char *)buf, cut);
        prefixes_ok &= p->bad == 0 && p->n <= 20;
        store_index_close(p);
    }
    ok(prefixes_ok, "truncated files: a prefix, no error");
    store_index_close(one);
    store_index_close(tr);
    store_index_close(ix);
    free(buf);
}

/* ---- the exported encoders -------------------------------------------- */

static void test_encoders(void)
{
    unsigned char buf[STORE_INDEX_HDR_LEN + 2 * (STORE_INDEX_REC_FIXED + 16)];
    struct store_index_rec r = { 1, 7, 8, STORE_F_SEEN, 5, 2, 1234, 99, 40, 1, "a.b", 3 };
    size_t n = STORE_INDEX_HDR_LEN, len;

    is_int(store_index_crc32((const unsigned char *)"123456789", 9), 0xCBF43926u,
           "CRC-32 check value");
    store_index_hdr_encode(buf, 42, 7, 0, 4);
    len = store_index_rec_encode(&r, buf + n);
    is_int(len, STORE_INDEX_REC_FIXED + 3 + 8, "record length");
    n += len;
    struct store_index *ix = store_index_new_empty();
    is_int(store_index_feed(ix, buf, n), n, "header and record applied");
    ok(ix->uidvalidity == 42 && ix->uidnext == 8 && ix->highestmodseq == 5 && ix->n == 1,
       "the header's and the record's folder state");
    ok(ix->n == 1 && ix->msgs[0].uid == 7 && ix->msgs[0].flags == STORE_F_SEEN &&
       ix->msgs[0].keywords == 2 && ix->msgs[0].size == 1234 && ix->msgs[0].date == 99 &&
       ix->msgs[0].hdr_end == 40 && ix->msgs[0].in_cur == 1 &&
       strcmp(ix->msgs[0].name, "a.b") == 0, "the record's message");
    store_index_close(ix);
    buf[STORE_INDEX_HDR_LEN + 9] ^= 1;           /* the UID: the CRC no longer matches */
    ix = store_index_new_empty();
    is_int(store_index_feed(ix, buf, n), STORE_INDEX_HDR_LEN, "a flipped octet: refused");
    store_index_close(ix);
}

/* ---- flags ------------------------------------------------------------- */

static void test_flags(void)
{
    uint32_t fl;
    uint64_t kw;
    char buf[40];

    store_flags_parse("2,DFPRSTaz", &fl, &kw);
    is_int(fl, 0x3f, "all six flags");
    is_int(kw, 1 | (1ull << 25), "keywords a and z");
    store_flags_format(fl, kw, buf, sizeof(buf));
    is_str(buf, ":2,DFPRSTaz", "formatted back");
    store_flags_parse("1,S", &fl, &kw);
    is_int(fl, 0, "experimental info ignored");
}

int main(void)
{
    char tmpl[] = "/tmp/test_index.XXXXXX";

    if (mkdtemp(tmpl) == NULL)
        return 2;
    snprintf(root, sizeof(root), "%s", tmpl);
    test_flags();
    test_encoders();
    test_basic();
    test_deliver();
    test_compact();
    test_damage();
    test_trickle();
    test_threads();
    test_procs();
    test_kill9();
    test_kill9_compact();
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        return 2;
    return tap_done();
}
