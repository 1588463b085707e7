/* SPDX-License-Identifier: MIT */
/*
 * log.c - one line per event worth telling: stderr in the foreground,
 * syslog once daemonized (stderr then goes to /dev/null).
 */
#include <stdio.h>
#include <syslog.h>

#include "scopefs.h"

static bool log_foreground = true;

void sfs_log_init(bool foreground)
{
	log_foreground = foreground;
	if (!foreground)
		openlog("scopefs", LOG_PID, LOG_DAEMON);
}

void sfs_log(int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (log_foreground) {
		/* One fprintf per line so that concurrent lines do not mix. */
		char line[2048];

		vsnprintf(line, sizeof(line), fmt, ap);
		fprintf(stderr, "scopefs: %s\n", line);
	} else {
		vsyslog(prio, fmt, ap);
	}
	va_end(ap);
}
