/*
 * store/layout.h — the shape every mailbox has: a Maildir++ root (INBOX)
 * with the special folders .Sent, .Drafts, .Trash and .Junk (RFC 6154
 * roles), each a Maildir with a `maildirfolder` file, and a `subscriptions`
 * file (Dovecot's and Courier's format: one folder name per line) that
 * subscribes them.  Made at the first delivery into a mailbox and checked
 * again by POP3/IMAP at login.  Blocking (mkdir, stat): worker threads only.
 */
#ifndef HATO_STORE_LAYOUT_H
#define HATO_STORE_LAYOUT_H

#define STORE_SUBSCRIPTIONS "subscriptions"
#define STORE_NSPECIAL 4

/* "Sent", "Drafts", "Trash", "Junk": the names under the root are "." + these. */
extern const char *const store_special_folders[STORE_NSPECIAL];

/* Ensure the mailbox at root has its layout: the root Maildir, every
 * special folder that is missing (an existing one is left as it is), and
 * the subscriptions file if there is none (an existing one is the user's
 * and never rewritten, so an unsubscribed folder stays unsubscribed).
 * Idempotent, safe against a concurrent call.  A root whose last component
 * starts with '.' is a folder, not a mailbox: left alone.  0 or -1 (errno). */
int store_layout_ensure(const char *root);

#endif
