#pragma once
/* Nothing forkscope starts may outlive it, even when forkscope is SIGKILLed.
 *
 * guardian_split() forks the process in two: the guardian (the pid the user
 * started) and a worker that does the job. Both are child subreapers, so the
 * tree's orphans go to the worker, and to the guardian if the worker dies.
 *  - worker SIGKILLed: the guardian reaps it, finds the orphaned tree among
 *    its own descendants and ends it SIGINT first;
 *  - guardian SIGKILLed: the worker gets guardian_lost_signal()
 *    (PR_SET_PDEATHSIG), tears its tree down as on SIGTERM and exits.
 * Only a SIGKILL of both at once (a kill -9 of their process group) escapes;
 * the trees themselves live in process groups of their own. */

/* Returns 0 in the worker. In the guardian it does not return: it forwards
 * SIGINT/SIGTERM/SIGHUP to the worker, waits for it, ends what is left, and
 * exits with the worker's status (128+N if it died of signal N). Returns
 * -errno if the split failed (the caller then just runs unguarded). */
int guardian_split(void);

/* The worker's parent-death signal: a real-time signal of its own (SIGRTMIN+5)
 * rather than SIGTERM, which the user may have set to be ignored (and watch
 * keeps ignored signals ignored). The worker must catch it and treat it as
 * SIGTERM; its default action ends the worker before the handler is set. */
int guardian_lost_signal(void);
