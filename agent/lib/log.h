/* One logging call for the whole program. Lines go to stderr as
 * "berth[PID]: LEVEL: message", or as "<PRIORITY>LEVEL: message" when
 * stderr is the journal (journald takes the syslog priority from the
 * prefix and adds the time and pid), and only when the level is at or
 * above the threshold set by -q / -v. */
#ifndef BERTH_LOG_H
#define BERTH_LOG_H

enum berth_log_level {
    BERTH_LOG_DEBUG,
    BERTH_LOG_INFO,
    BERTH_LOG_WARN,
    BERTH_LOG_ERROR,
    BERTH_LOG_QUIET,
};

void berth_log_set_level(enum berth_log_level level);
enum berth_log_level berth_log_get_level(void);
void berth_log(enum berth_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
