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

Run "cogflow <command> --help" for a command's options.

Exit codes: 0 done, 1 failed while running, 2 invalid workflow or usage, 130 interrupted.
`;

/** `cogflow run --help`. */
export const RUN_HELP = `Usage: cogflow run <workflow> [options]

Runs a workflow file: validates it, plans what its outputs need, and runs those nodes.

Options:
  --set key=value         set a param (repeatable); the value is read as a YAML flow value:
                          42, true, [a, b], ["x, y", z], null; anything else is text
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
