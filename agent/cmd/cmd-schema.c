/* berth schema: print the JSON Schema of the desired-state file, embedded at
 * build time from manifests-schema/berth.schema.json so the two cannot drift. */
#include <stdio.h>

#include "berth-schema.h"
#include "cmd.h"

static const char usage_text[] =
    "Usage: berth schema\n"
    "\n"
    "Print the JSON Schema (draft 2020-12) of the desired-state file, for\n"
    "editors (yaml-language-server) and other validators.\n"
    "\n"
    "Options:\n"
    "  -h, --help    this help\n";

int cmd_schema(int argc, char **argv, struct berth_globals *g)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "hqv", longopts, NULL)) != -1) {
        if (berth_global_option(c, optarg, g))
            continue;
        if (c == 'h') {
            fputs(usage_text, stdout);
            return EXIT_OK;
        }
        return berth_usage_error("schema", "unknown option");
    }
    if (optind < argc)
        return berth_usage_error("schema", "unexpected argument '%s'", argv[optind]);
    if (fwrite(berth_schema_json, 1, berth_schema_json_len, stdout) != berth_schema_json_len ||
        fflush(stdout) != 0) {
        berth_die_msg("schema", "writing the schema to standard output failed");
        return EXIT_FAIL;
    }
    return EXIT_OK;
}
