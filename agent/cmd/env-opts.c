/* -e and -w, as `berth run` and `berth exec` both take them. */
#include <stdlib.h>

#include "cmd.h"
#include "util.h"

int berth_env_workdir_option(const char *verb, int c, const char *arg, const char ***env,
                             size_t *nenv, const char **workdir)
{
    switch (c) {
    case 'e':
        if (!*arg || *arg == '=') {
            berth_usage_error(verb, "invalid environment variable '%s': expected KEY=VALUE", arg);
            return -1;
        }
        *env = xrealloc(*env, (*nenv + 1) * sizeof(char *));
        (*env)[(*nenv)++] = arg;
        return 1;
    case 'w':
        if (*arg != '/') {
            berth_usage_error(verb, "invalid --workdir '%s': must be an absolute path", arg);
            return -1;
        }
        *workdir = arg;
        return 1;
    default:
        return 0;
    }
}
