/* testutil.h - small helpers shared by the test programs: scratch directories and files. Header
 * only (static inline), so a test binary still links nothing but its module and declared
 * dependencies.
 */
#ifndef SL_TESTUTIL_H
#define SL_TESTUTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static inline int sl_test_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

/* Remove a directory tree; 0 or -1 (errno set). */
static inline int sl_test_rm_rf(const char *dir)
{
	return nftw(dir, sl_test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory /tmp/sl_test_<tag>.XXXXXX in buf; buf on success, NULL on failure. */
static inline char *sl_test_mkdtemp(char *buf, size_t cap, const char *tag)
{
	snprintf(buf, cap, "/tmp/sl_test_%s.XXXXXX", tag);
	return mkdtemp(buf);
}

static inline int sl_test_file_exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

#endif /* SL_TESTUTIL_H */
