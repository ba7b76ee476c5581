/* The README's C quick start (scripts/ci/test-c.sh builds it against the installed library with
 * pkg-config and runs it). */
#include <stdio.h>
#include <string.h>
#include <tripwire.h>

/* The protected function: one attempt. Return how it went; honour attempt->deadline_ns. */
static tw_outcome fetch_price(void *ctx, tw_attempt *attempt) {
  double *price = ctx;
  if (attempt->number < 2) return TW_OUTCOME_FAILURE; /* the first try fails (retryable) */
  *price = 42.0;
  return TW_OUTCOME_SUCCESS;
}

int main(void) {
  const char *policy =
      "{\"retry\": {\"maxRetries\": 3, \"backoff\": {\"type\": \"exponential\", \"base\": \"10ms\"}},"
      " \"circuitBreaker\": {\"trip\": {\"consecutiveFailures\": 5}, \"openDuration\": \"30s\"},"
      " \"timeout\": {\"perAttempt\": \"2s\"}}";
  tw_pipeline *pipeline = NULL;
  tw_error *err = NULL;
  if (tw_pipeline_new(policy, strlen(policy), &pipeline, &err) != TW_STATUS_OK) {
    fprintf(stderr, "bad policy: %s\n", tw_error_message(err));
    tw_error_free(err);
    return 1;
  }
  double price = 0;
  tw_status status = tw_pipeline_execute(pipeline, fetch_price, &price, &err);
  if (status == TW_STATUS_OK) {
    printf("price: %.2f\n", price);
  } else {
    printf("failed (%s): %s\n", tw_status_str(status), tw_error_message(err));
    tw_error_free(err);
  }
  tw_pipeline_free(pipeline);
  return status == TW_STATUS_OK ? 0 : 1;
}
