/**
 * Help texts of the command line.
 *
 * @module
 */

/** `cogflow --help`. */
export const MAIN_HELP =
  `cogflow: run text-to-video diffusion workflows (YAML node graphs) on ONNX Runtime

Usage:
  cogflow run <workflow> [--set key=value]... [options]   run a workflow
  cogflow validate <workflow>... [--set key=value]...      check workflows without running them
  cogflow graph <workflow> [--format mermaid|dot]          print the node graph
  cogflow nodes [--json]                                    list node types, ports and settings
  cogflow list [dir]                                        list library workflows and their params
  cogflow show <workflow>                                   print the expanded workflow as YAML
  cogflow init <template> <new-file>                        start a workflow from a library file
  cogflow upgrade <workflow>...                             migrate files to current node versions
  cogflow serve [dir] [--port 8188]                         edit and run workflows in a browser
  cogflow submit <workflow> [--set key=value]... [--wait]  queue a run (Redis, BullMQ)
  cogflow worker [--concurrency 1] [--device N]            run queued jobs (one worker per GPU)
  cogflow queue [--json] [--cancel ID]                     list the queue's jobs, or cancel one

Run "cogflow <command> --help" for a command's options.

Exit codes: 0 done, 1 failed while running, 2 invalid workflow or usage, 130 interrupted.
`;

/** `cogflow run --help`. */
export const RUN_HELP = `Usage: cogflow run <workflow> [options]

Runs a workflow file: validates it, plans what its outputs need, and runs those nodes.

Options:
  --set key=value         set a param (repeatable); the value is read as a YAML flow value:
                          42, true, [a, b], ["x, y", z], null; anything else is text;
                          core/steps=20 sets param steps of subworkflow node core
  --params <file>         params from a YAML file (name: value; repeatable); --set wins
  --print-params          print each param's value and where it came from, and run nothing
  --only <node>           run only this node and what it needs (repeatable)
  --cache <dir>           keep results in <dir> and reuse them across runs
  --cache-size <size>     size limit of the cache folder (default 10GiB)
  --json                  write events as JSON lines to stdout (for programs)
  --plain                 plain progress lines even on a terminal
  --quiet                 no progress, only errors and the written files
  --memory-report         print memory per node and write a memory timeline chart (SVG)
  --concurrency <n>       most nodes running at once (default 4)
  --allow-remote-plugins  allow plugins from http(s):, jsr: and npm: URLs
  --help                  this text

Ctrl-C stops at the next step boundary, removes partial outputs and exits with 130.
`;

/** `cogflow validate --help`. */
export const VALIDATE_HELP = `Usage: cogflow validate <workflow>... [options]

Checks workflow files without running them and reports every problem with file:line:col.

Options:
  --set key=value         set a param (repeatable), checked against its declared type
  --params <file>         params from a YAML file (name: value; repeatable); --set wins
  --strict                a param without default left unset is an error (by default the
                          file is valid, and the params it needs are listed)
  --json                  write the result as JSON
  --allow-remote-plugins  allow plugins from http(s):, jsr: and npm: URLs
  --help                  this text
`;

/** `cogflow graph --help`. */
export const GRAPH_HELP = `Usage: cogflow graph <workflow> [options]

Prints the validated node graph, with hook nodes placed between the node they wrap and its readers.

Options:
  --format mermaid|dot    output format (default mermaid)
  --set key=value         set a param (repeatable); params can switch nodes on and off
  --params <file>         params from a YAML file (name: value; repeatable); --set wins
  --allow-remote-plugins  allow plugins from http(s):, jsr: and npm: URLs
  --help                  this text
`;

/** `cogflow nodes --help`. */
export const NODES_HELP = `Usage: cogflow nodes [options]

Lists every node type with its inputs, settings and outputs.

Options:
  --json                  machine-readable output (settings as JSON Schema)
  --plugin <module>       also list the node types of a plugin module (repeatable)
  --help                  this text
`;

const CONNECTION_HELP =
  `  --redis <url>           Redis (default: COGFLOW_REDIS_URL, else redis://127.0.0.1:6379);
                          a password in it is never printed
  --queue <name>          queue name (default: COGFLOW_QUEUE, else cogflow)`;

/** `cogflow submit --help`. */
export const SUBMIT_HELP = `Usage: cogflow submit <workflow> [options]

Validates a run here (an invalid workflow exits with 2 and is not queued), then queues it. The job
id comes from the run's content (workflow text, params, plugin sources), so submitting the same run
twice makes one job. Prints the job id.

Options:
  --set key=value         set a param (repeatable), as cogflow run takes it
  --params <file>         params from a YAML or JSON file (name: value); --set wins
  --priority <n>          1 to 2097152, lower first; jobs without one go before all with one
  --attempts <n>          tries when a worker fails (default 3; a failing run is not retried)
  --output-dir <dir>      outputs go here (a folder every worker mounts); default: the worker's
  --wait                  show the job's progress as cogflow run does, print the files written and
                          exit with the run's exit code; Ctrl-C cancels the job
  --json                  with --wait: the run's events as JSON lines; else the id as JSON
  --plain                 plain progress lines even on a terminal
  --quiet                 no progress
${CONNECTION_HELP}
  --help                  this text

Workers read the workflow from the job: they need the models and the output folder, not the
workflow's files. Relative paths resolve on the worker against its own folder, as they would here.
`;

/** `cogflow worker --help`. */
export const WORKER_HELP = `Usage: cogflow worker [options]

Takes runs from the queue, one at a time per --concurrency, and runs each as cogflow run would
(in a child process with scoped permissions) with this machine's models and caches, publishing its
progress. A run that fails (exit 1 or 2) fails its job; a worker that dies leaves its job to
another worker after the stall interval. Ctrl-C or SIGTERM stops: running jobs go back to the queue.

Options:
  --concurrency <n>       jobs at once (default 1: one worker per GPU)
  --provider cpu|cuda     sets the provider param of workflows that declare one
  --device <n>            the GPU to use (CUDA_VISIBLE_DEVICES for the runs)
  --output-dir <dir>      where relative output paths go, unless the job names a folder
  --stall-interval <ms>   how long a dead worker's job stays locked (default 30000)
  --name <name>           this worker's name in listings (default host:pid)
${CONNECTION_HELP}
  --help                  this text
`;

/** `cogflow queue --help`. */
export const QUEUE_HELP = `Usage: cogflow queue [options]

Lists the queue's jobs: waiting (in the order they run), running, done and failed (newest first).

Options:
  --json                  machine-readable output
  --cancel <id>           cancel a job (repeatable): a waiting one is removed, a running one stops
                          at its next step
  --limit <n>             most jobs listed per state (default 50)
${CONNECTION_HELP}
  --help                  this text
`;
