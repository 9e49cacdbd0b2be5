#include "proctitle.h"

#include <string.h>
#include <sys/prctl.h>

#include "util.h"

static char *area;
static size_t area_len;

void berth_proctitle_init(int argc, char **argv)
{
    char *end;

    if (argc < 1 || !argv[0])
        return;
    /* the kernel lays the arguments out one after the other; only that
     * stretch is ours to rewrite */
    end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc && argv[i] == end; i++)
        end += strlen(argv[i]) + 1;
    area = argv[0];
    area_len = (size_t)(end - argv[0]);
}

void berth_proctitle_set(const char *const *args)
{
    char *title;
    size_t used = 0;

    if (args[0])
        prctl(PR_SET_NAME, args[0], 0, 0, 0);
    if (!area || area_len < 2)
        return;
    /* built aside: the words may lie in the area themselves */
    title = xcalloc(area_len, 1);
    for (; *args && used + 1 < area_len; args++) {
        size_t n = strlen(*args);
        if (n > area_len - used - 1)
            n = area_len - used - 1;
        memcpy(title + used, *args, n);
        used += n;
        title[used++] = '\0';
    }
    memcpy(area, title, area_len);
    free(title);
    /* without the trailing NULs that would show as empty arguments */
    prctl(PR_SET_MM, PR_SET_MM_ARG_END, (unsigned long)(area + used), 0, 0);
}
