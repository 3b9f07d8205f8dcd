#pragma once
/* Where `run` and `scenarios` look when given no path (docs/cli.md,
 * "The installed catalogue"). */

/* The scenario catalogue to use by default, as a malloc'd path:
 *  1. $FORKSCOPE_DATADIR/scenarios when that variable is set;
 *  2. ./scenarios for a binary in a meson build tree (the source tree's);
 *  3. ../share/forkscope/scenarios next to the binary (a relocated or
 *     DESTDIR copy of an install);
 *  4. the datadir given at build time (FORKSCOPE_DATADIR/scenarios);
 *  5. ./scenarios.
 * When none exists, the path of 4, so that the error names where the
 * installed catalogue belongs. 0, or -ENOMEM. */
int cli_default_catalogue(char **ret_path);
