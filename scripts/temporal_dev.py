"""How this project runs Temporal's dev server: `make dev`, the tests and the benchmark.

The benchmark also keeps the dev server's state in memory (a file costs a synced write
per history event); `make dev` keeps it in `var/temporal.db`, so requests outlive a
restart.
"""

# One task queue partition: with one worker the default four only add forwarding hops
# between them. Eager activities: a workflow task's completion hands back the activity
# it scheduled, sparing a trip through matching. Transfer queue reads: the limit of 20 a
# second is per history shard, and the dev server has one, so every task the server
# hands on (a workflow task, a child's start, a signal) waited up to 50 ms for the next
# read. Measured in the benchmark (docs/performance.md). Task queues per worker deployment
# version: the tests run one build on a task queue per test, hundreds, past the server's
# 100 (a worker beyond it polls in vain).
TUNING = (
    "--dynamic-config-value",
    "matching.maxTaskQueuesInDeploymentVersion=100000",
    "--dynamic-config-value",
    "history.transferProcessorMaxPollRPS=1000",
    "--dynamic-config-value",
    "system.enableActivityEagerExecution=true",
    "--dynamic-config-value",
    "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value",
    "matching.numTaskqueueWritePartitions=1",
)
