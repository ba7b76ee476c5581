/* Two instances of a service share one rate limit through Redis: 5 calls/s with a burst of 5
 * for the whole fleet, however many instances ask. Each instance brings its own hiredis
 * connection; tripwire hands it one script per decision (bindings-c/adapters/tw_hiredis.c).
 *
 *   cc fleet.c tw_hiredis.c $(pkg-config --cflags --libs tripwire) -lhiredis -o fleet
 *   TRIPWIRE_REDIS_PORT=6379 ./fleet
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tripwire.h"
#include "tw_hiredis.h"

static tw_outcome call_partner(void *admitted, tw_attempt *attempt) {
  (void)attempt;
  ++*(int *)admitted; /* the protected call goes here */
  return TW_OUTCOME_SUCCESS;
}

int main(void) {
  const char *config =
      "{\"rateLimit\": {\"algorithm\": \"gcra\", \"rate\": \"5/s\", \"burst\": 5},"
      " \"store\": {\"key\": \"partner-api\", \"timeout\": \"25ms\", \"expectedInstances\": 2}}";
  const char *port = getenv("TRIPWIRE_REDIS_PORT");
  redisContext *conn[2];
  tw_hiredis *redis[2];
  tw_pipeline *instance[2];
  int admitted[2] = {0, 0};
  for (int i = 0; i < 2; i++) {
    struct timeval connect_timeout = {0, 100000};
    conn[i] = redisConnectWithTimeout("127.0.0.1", port ? atoi(port) : 6379, connect_timeout);
    const char *why = NULL;
    redis[i] = tw_hiredis_new(conn[i], &why);
    tw_error *err = NULL;
    if (!redis[i] || tw_pipeline_new(config, strlen(config), &instance[i], &err) != TW_STATUS_OK) {
      fprintf(stderr, "fleet: %s\n", redis[i] ? tw_error_message(err) : why);
      return 1;
    }
    tw_store store = tw_hiredis_store(redis[i]);
    tw_pipeline_set_store(instance[i], &store, NULL);
  }
  /* Ten calls within a few milliseconds, alternating between the instances: the first five
   * pass (one shared burst), the others are refused with TW_STATUS_RATE_LIMITED. Were Redis
   * down, each instance would decide alone at rate/2 and burst/2 ("onUnavailable": "local"). */
  for (int n = 0; n < 10; n++) tw_pipeline_execute(instance[n % 2], call_partner, &admitted[n % 2], NULL);
  printf("admitted: instance A %d, instance B %d, together %d of 10\n", admitted[0], admitted[1],
         admitted[0] + admitted[1]);
  for (int i = 0; i < 2; i++) {
    tw_pipeline_free(instance[i]);
    tw_hiredis_free(redis[i]);
    redisFree(conn[i]);
  }
  return 0;
}
