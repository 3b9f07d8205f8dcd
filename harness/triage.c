#include "harness/triage.h"

#include <errno.h>

int
triage_run(const struct triage_request *req, json_t **ret_snapshot, json_t **ret_verdicts)
{
	/* Filled in when the snapshot and the verdict engine land. */
	return -ENOSYS;
}
